"""The survey page's form (pure): what a person typed or chose, as answers.

Form fields are named by item code. A value that cannot even be read as its type (a
word where a number goes) is a problem here; whether a number is in range, or an answer
is required, is `scoring`'s to say. What was typed is kept as typed, to show again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import FieldProblem
from app.i18n.catalogs import gettext
from app.studies.definition import Item, ItemType

YES, NO = "yes", "no"


@dataclass
class ParsedForm:
    answers: dict[str, Any] = field(default_factory=dict)  # items answered, as JSON values
    problems: list[FieldProblem] = field(default_factory=list)
    typed: dict[str, list[str]] = field(default_factory=dict)  # every field, as sent


def parse_form(items: Sequence[Item], form: Mapping[str, Sequence[str]]) -> ParsedForm:
    """The answers to these items in the submitted form (unanswered items are left out)."""
    parsed = ParsedForm()
    for item in items:
        raw = [value for value in form.get(item.code, []) if value.strip() != ""]
        parsed.typed[item.code] = list(raw)
        if not raw:
            continue
        if any("\x00" in value for value in raw):
            parsed.problems.append(
                FieldProblem((item.code,), gettext("Remove the unusual characters"))
            )
            continue
        try:
            parsed.answers[item.code] = _value(item, raw)
        except ValueError as problem:
            parsed.problems.append(FieldProblem((item.code,), str(problem)))
    return parsed


def _value(item: Item, raw: list[str]) -> Any:
    text = raw[0].strip()
    match item.type:
        case ItemType.choice:
            return _option(item, text)
        case ItemType.multi_choice:
            return [_option(item, value.strip()) for value in raw]
        case ItemType.boolean:
            if text not in (YES, NO):
                raise ValueError(gettext("Choose yes or no"))
            return text == YES
        case ItemType.integer:
            try:
                return int(text.replace(" ", ""))
            except ValueError:
                raise ValueError(gettext("Enter a whole number, like 12")) from None
        case ItemType.number:
            try:
                number = float(text.replace(" ", "").replace(",", "."))
            except ValueError:
                raise ValueError(gettext("Enter a number, like 12.5")) from None
            if not math.isfinite(number):
                raise ValueError(gettext("Enter a number, like 12.5"))
            return int(number) if number.is_integer() and "." not in text else number
        case ItemType.date | ItemType.text:
            return raw[0] if item.type is ItemType.text else text
    raise ValueError(
        gettext("This answer cannot be read")
    )  # pragma: no cover - every type is above


def _option(item: Item, text: str) -> int | str:
    for option in item.options or []:
        if str(option.value) == text:
            return option.value
    raise ValueError(gettext("Choose one of the answers"))


def as_typed(answers: Mapping[str, Any]) -> dict[str, list[str]]:
    """Saved answers as the form's fields would carry them (to show them again)."""
    shown: dict[str, list[str]] = {}
    for code, value in answers.items():
        if isinstance(value, bool):
            shown[code] = [YES if value else NO]
        elif isinstance(value, list):
            shown[code] = [str(v) for v in value]
        elif value is not None:
            shown[code] = [str(value)]
    return shown


def shortened(words: str, most: int = 60) -> str:
    """The start of a question, cut at a word, to name it in an error message."""
    if len(words) <= most:
        return words
    return words[:most].rsplit(" ", 1)[0].rstrip(",;:") + "…"
