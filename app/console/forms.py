"""What every console form shares: its text read within bounds, the problems found in it
put beside its fields, and the refusal that rolls its request back.

A form's problems come from the same checks the API makes (a Pydantic schema, a service
raising `InvalidInput`), as `FieldProblem`s with the path of the API's body. `field_errors`
puts each beside the form field that path names, in the form's order, in words the form
chose for that field (else the problem's own words as a sentence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TypeVar

from fastapi import Response
from pydantic import BaseModel, ValidationError

from app.errors import FieldProblem, InvalidInput
from app.web.forms import Form, first

MAX_TEXT = 2000

Model = TypeVar("Model", bound=BaseModel)


class FormRefused(Exception):
    """A form that cannot be taken. Raised, so the request's transaction is rolled back
    (nothing of it is kept), with the form page to show again (422): the console's routes
    answer with that page."""

    def __init__(self, page: Response) -> None:
        super().__init__("form refused")
        self.page = page


def text(form: Form, name: str, limit: int = MAX_TEXT) -> str:
    """A text field, without surrounding spaces, at most `limit` characters."""
    return first(form, name).strip()[:limit]


def sentence(words: str) -> str:
    """The words with a capital first letter (a message beside a field)."""
    return words[:1].upper() + words[1:]


def problems_of(invalid: ValidationError) -> list[FieldProblem]:
    """A schema's errors as the API reports them."""
    return [FieldProblem(tuple(e["loc"]), e["msg"]) for e in invalid.errors()]


def validated(schema: type[Model], document: object) -> Model:
    """The document checked as the API checks it; InvalidInput with every problem."""
    try:
        return schema.model_validate(document)
    except ValidationError as invalid:
        raise InvalidInput(problems_of(invalid)) from None


def dashed(loc: Sequence[str | int]) -> str:
    """A problem's path as a form names fields: `contact.email` is `contact-email`."""
    return "-".join(str(part) for part in loc if part != "body")


def field_of(
    loc: Sequence[str | int], fields: Sequence[str], aliases: Mapping[str, str] | None = None
) -> str:
    """The form field a problem's path names: the longest start of its dashed path that
    is a field of the form (or an alias of one); else the form's first field."""
    parts = dashed(loc).split("-") if dashed(loc) else []
    for end in range(len(parts), 0, -1):
        name = "-".join(parts[:end])
        if name in fields:
            return name
        if aliases and name in aliases:
            return aliases[name]
    return fields[0]


def field_errors(
    problems: Iterable[FieldProblem],
    *,
    fields: Sequence[str],
    messages: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """One message per field that has a problem, in the order of `fields` (the form's):
    the form's own words for the problem's whole path, or for a path within the field
    (`sites-*`), or else for the field, if it has some; else the problem's own.
    `aliases` names the field of a path that is none of the form's."""
    words = messages or {}
    errors: dict[str, str] = {}
    for problem in problems:
        field = field_of(problem.loc, fields, aliases)
        path = dashed(problem.loc)
        deeper = words.get(f"{field}-*") if path.startswith(f"{field}-") else None
        message = words.get(path) or deeper or words.get(field) or sentence(problem.msg)
        errors.setdefault(field, message)
    return in_order(errors, fields)


def in_order(errors: Mapping[str, str], fields: Sequence[str]) -> dict[str, str]:
    """The errors in the order their fields come on the form (as its summary lists them)."""
    rank = {field: i for i, field in enumerate(fields)}
    return dict(sorted(errors.items(), key=lambda item: rank.get(item[0], len(fields))))


Choice = TypeVar("Choice", bound=StrEnum)


def chosen(options: type[Choice], value: str, *, field: str) -> Choice | None:
    """A filter's choice from the query: None for "Any" (sent empty); a 422 naming the
    field for a value that is none of the options."""
    if not value:
        return None
    try:
        return options(value)
    except ValueError:
        allowed = ", ".join(option.value for option in options)
        raise InvalidInput(
            [FieldProblem((field,), f"choose one of {allowed}")], part="query"
        ) from None
