"""Answers checked, scored and screened for safety alerts (pure).

Answers are JSON values keyed by item code: a choice is its coded option (an integer),
a multiple choice a list of coded options, integers and numbers numbers, text text, a
date `YYYY-MM-DD`, a boolean true or false. Every message says how to put a wrong
answer right, in plain words.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

from app.errors import FieldProblem
from app.i18n.catalogs import gettext
from app.studies.definition import AlertOperator, AlertRule, Instrument, Item, ItemType, Score

MAX_TEXT = 5000  # characters of a free-text answer
MAX_ANSWERS = 1000  # items answered in one request

Answers = Mapping[str, Any]


def answer_problem(item: Item, value: Any) -> str | None:
    """What is wrong with one answer given to the item (None: nothing)."""
    options = [o.value for o in item.options or []]
    match item.type:
        case ItemType.choice:
            if not _is_int(value) or value not in options:
                return gettext("Choose one of the answers")
        case ItemType.multi_choice:
            if not isinstance(value, list) or not all(
                _is_int(v) or isinstance(v, str) for v in value
            ):
                return gettext("Choose from the answers")
            if any(v not in options for v in value) or len(set(value)) != len(value):
                return gettext("Choose from the answers, each once")
        case ItemType.integer:
            if not _is_int(value) or not _within(item, value):
                return _numbered(item, whole=True)
        case ItemType.number:
            if not _is_number(value) or not _within(item, value):
                return _numbered(item, whole=False)
        case ItemType.text:
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                return gettext("Write at most %(most)s characters") % {"most": MAX_TEXT}
        case ItemType.date:
            if not isinstance(value, str) or _date(value) is None:
                return gettext("Enter a real date, for example 2027-03-31")
        case ItemType.boolean:
            if not isinstance(value, bool):
                return gettext("Choose yes or no")
    return None


def missing_message(item: Item) -> str:
    """What to say beside a required item left unanswered."""
    if item.type in (ItemType.choice, ItemType.boolean):
        return gettext("Choose an answer")
    if item.type is ItemType.multi_choice:
        return gettext("Choose at least one answer")
    return gettext("Answer this question")


def check(items: Iterable[Item], answers: Answers, *, complete: bool) -> list[FieldProblem]:
    """Every problem with the answers to these items; with `complete`, a required item
    left unanswered is one. Unknown item codes are problems too."""
    known = {item.code: item for item in items}
    problems = [
        FieldProblem((code,), gettext("Not a question of this survey"))
        for code in answers
        if code not in known
    ]
    for code, item in known.items():
        value = answers.get(code)
        if _empty(value):
            if complete and item.required:
                problems.append(FieldProblem((code,), missing_message(item)))
            continue
        problem = answer_problem(item, value)
        if problem is not None:
            problems.append(FieldProblem((code,), problem))
    return problems


def scores(instrument: Instrument, answers: Answers) -> dict[str, float | None]:
    """Each score of the instrument: None when fewer items are answered than it needs."""
    items = {item.code: item for item in instrument.items}
    return {score.code: _score(score, items, answers) for score in instrument.scores}


def _score(score: Score, items: Mapping[str, Item], answers: Answers) -> float | None:
    values: list[float] = []
    for code in score.items:
        value: Any = answers.get(code)
        if _empty(value):
            continue
        number = float(value)  # scored items are numeric (the definition's rules)
        if code in score.reverse:
            low, high = _bounds(items[code])
            number = low + high - number
        values.append(number)
    needed = score.min_answered if score.min_answered is not None else len(score.items)
    if len(values) < needed:
        return None
    total = math.fsum(values)
    return total if score.method == "sum" else total / len(values)


def raised_alerts(
    rules: Iterable[AlertRule], answers: Answers, computed: Mapping[str, float | None]
) -> list[AlertRule]:
    """The alert rules these answers and scores meet."""
    raised = []
    for rule in rules:
        value: Any = (
            answers.get(rule.item) if rule.item is not None else computed.get(rule.score or "")
        )
        if isinstance(value, bool):
            value = int(value)
        if _is_number(value) and _COMPARE[rule.op](float(value), rule.value):
            raised.append(rule)
    return raised


_COMPARE: dict[AlertOperator, Callable[[float, float], bool]] = {
    AlertOperator.gt: operator.gt,
    AlertOperator.ge: operator.ge,
    AlertOperator.lt: operator.lt,
    AlertOperator.le: operator.le,
    AlertOperator.eq: operator.eq,
    AlertOperator.ne: operator.ne,
}


def _bounds(item: Item) -> tuple[float, float]:
    if item.type is ItemType.boolean:
        return 0.0, 1.0
    if item.options:
        values = [float(o.value) for o in item.options if isinstance(o.value, int)]
        return min(values), max(values)
    assert item.min is not None and item.max is not None  # the definition's rules ensure it
    return item.min, item.max


# No answer is larger than a study definition's own numbers may be: a 400-digit integer
# would overflow the float arithmetic of scores (and `math.isfinite` itself).
LARGEST_ANSWER = 1e12


def _is_int(value: Any) -> bool:
    return _is_number(value) and isinstance(value, int)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -LARGEST_ANSWER <= value <= LARGEST_ANSWER  # False for NaN and infinities
    )


def _within(item: Item, value: float) -> bool:
    return (item.min is None or value >= item.min) and (item.max is None or value <= item.max)


def _numbered(item: Item, *, whole: bool) -> str:
    """How to type the item's number, with its range (in the language being rendered:
    each whole sentence is one message, as translations need)."""

    def show(bound: float) -> str:
        return str(int(bound)) if float(bound).is_integer() else str(bound)

    low = show(item.min) if item.min is not None else None
    high = show(item.max) if item.max is not None else None
    if whole:
        if low is not None and high is not None:
            return gettext("Enter a whole number from %(min)s to %(max)s") % {
                "min": low,
                "max": high,
            }
        if low is not None:
            return gettext("Enter a whole number of %(min)s or more") % {"min": low}
        if high is not None:
            return gettext("Enter a whole number of %(max)s or less") % {"max": high}
        return gettext("Enter a whole number")
    if low is not None and high is not None:
        return gettext("Enter a number from %(min)s to %(max)s") % {"min": low, "max": high}
    if low is not None:
        return gettext("Enter a number of %(min)s or more") % {"min": low}
    if high is not None:
        return gettext("Enter a number of %(max)s or less") % {"max": high}
    return gettext("Enter a number")


def _date(text: str) -> date | None:
    """A calendar date written YYYY-MM-DD, and nothing else (Python also reads week
    dates such as 2027-W01-1)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []
