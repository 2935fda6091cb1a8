"""The comprehension quiz (pure): which answers were right, and whether they pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.studies.definition import ConsentDocument

ATTEMPTS_BEFORE_CALL = 2  # failing this many times flags the person for a call


@dataclass(frozen=True)
class Marked:
    """One attempt: the questions answered wrongly (their codes), unanswered ones, and
    whether the right answers reach the pass mark."""

    wrong: tuple[str, ...]
    unanswered: tuple[str, ...]
    right: int
    passed: bool


def mark(document: ConsentDocument, language: str, answers: Mapping[str, str]) -> Marked:
    """Mark an attempt at the version's quiz in `language` (an empty quiz passes)."""
    quiz = document.texts[language].quiz
    unanswered = tuple(q.code for q in quiz if not answers.get(q.code))
    wrong = tuple(q.code for q in quiz if answers.get(q.code) and answers[q.code] != q.answer)
    right = len(quiz) - len(wrong) - len(unanswered)
    return Marked(wrong, unanswered, right, right >= document.quiz_pass_mark(language))
