"""The definition's rules for text messages' words (SPEC 11): every language's words
carry the personal link, name only {link} and {first_name}, and are filled in by plain
replacement (a format or conversion such as `{link:>999999999}` is refused)."""

from __future__ import annotations

from typing import Any

import pytest

from app.demo import demo_definition
from app.studies.definition import StudyDefinition
from app.studies.validation import definition_problems


def _problems(sms: dict[str, Any], translations: dict[str, str] | None = None) -> list[str]:
    document = demo_definition()
    document["sms"] = {**document.get("sms", {}), **sms}
    for path, text in (translations or {}).items():
        document["translations"]["es"][path] = text
    definition = StudyDefinition.model_validate(document)
    return [
        f"{'.'.join(str(p) for p in problem.loc)}: {problem.msg}"
        for problem in definition_problems(definition)
    ]


@pytest.mark.parametrize(
    ("words", "says"),
    [
        ("Your survey: {link:>999999999}", "braces balanced"),
        ("Your survey: {link!r}", "braces balanced"),
        ("Your survey: {link", "braces balanced"),
        ("Your survey is ready", "must carry the personal link"),
        ("Hi {name}: {link}", "not name"),
        ("{link.__class__} {link}", "not link.__class__"),
    ],
)
def test_words_that_cannot_be_filled_in_plainly_are_refused(words: str, says: str) -> None:
    spanish = {"sms.invitation": "Su encuesta: {link}"}
    refused = _problems({"invitation": words}, spanish)
    assert any(p.startswith("sms.invitation:") and says in p for p in refused), refused


def test_each_translation_of_the_words_is_checked_as_the_words_are() -> None:
    fine = _problems({"invitation": "Your survey: {link}"}, {"sms.invitation": "Hola: {link}"})
    assert fine == []
    refused = _problems(
        {"invitation": "Your survey: {link}"},
        {"sms.invitation": "Hola {nombre}: {enlace}"},
    )
    assert any(p.startswith("translations.es.sms.invitation:") for p in refused), refused
