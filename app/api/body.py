"""Request bodies: parsed off the event loop, and refused only after authentication.

FastAPI reads the body (within the limits set on the app and its routes: 413 beyond
them) and parses JSON on the event loop before it resolves any dependency, so a large
or malformed body would stall every request and be refused (422) before an anonymous
caller hears 401. `CheckedJsonRoute` parses JSON bodies first (larger than 16 KB: in a
worker thread) and
checks what PostgreSQL cannot store (NUL characters, lone surrogates) and how deep
they nest; a body at fault is remembered, and `refuse_bad_input`, a dependency that
routers list after authentication, turns it into a 422 problem.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from app.errors import FieldProblem, InvalidInput

MAX_JSON_DEPTH = 32
JSON_BODY_LIMIT = 1024 * 1024  # every JSON body; a route may allow more (a CSV upload)
# Bodies up to this size parse in microseconds: on the event loop, as a trip to a
# worker thread would cost more than it saves. Larger ones go to a worker thread.
PARSE_ON_LOOP_UP_TO = 16 * 1024
_PROBLEM = "trialdesk_body_problem"


class BadBody(ValueError):
    """What is wrong with a JSON body, in words for its sender, and where (`loc`: the
    path of the value at fault, empty for the document as a whole)."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


class TooManyValues(BadBody):
    """The document holds more values than its reader takes (YAML aliases expanded)."""


class CheckedJsonRoute(APIRoute):
    """Routes whose JSON bodies are parsed in a worker thread, and checked."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if _is_json(request):
                body = await request.body()
                if body:
                    try:
                        if len(body) <= PARSE_ON_LOOP_UP_TO:
                            parsed = parse_json(body)
                        else:
                            parsed = await run_in_threadpool(parse_json, body)
                    except BadBody as problem:
                        request.scope[_PROBLEM] = problem
                        parsed = {}  # validated (and refused) after authentication
                    # Starlette keeps the parsed body here; FastAPI then uses it as is.
                    request._json = parsed
            return await handle(request)

        return handler


def parse_json(body: bytes) -> Any:
    """The JSON value of a body, or BadBody saying why it cannot be accepted."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise BadBody(f"the JSON nests more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:  # not UTF-8, or not JSON
        raise BadBody(f"the body is not valid JSON ({exc})"[:200]) from None
    check_value(value)
    return value


def check_value(value: Any, *, max_values: int | None = None) -> None:
    """BadBody if a parsed document cannot be taken: nested deeper than MAX_JSON_DEPTH,
    text no database can store (keys included), or (when bounded) more than
    `max_values` values in all: the one walk for JSON bodies, definition files and the
    console's documents."""
    pending: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    count = 0
    while pending:
        item, depth, loc = pending.pop()
        count += 1
        if max_values is not None and count > max_values:
            raise TooManyValues(f"the document holds more than {max_values:,} values")
        if depth > MAX_JSON_DEPTH:
            raise BadBody(f"the JSON nests more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(item, str):
            _check_text(item, loc)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    _check_text(key, loc)
                pending.append((child, depth + 1, (*loc, str(key))))
        elif isinstance(item, list):
            pending.extend((child, depth + 1, (*loc, i)) for i, child in enumerate(item))


def storable(text: str) -> bool:
    """Whether the text has no NUL and no lone surrogate (PostgreSQL takes neither): the
    one check of storable text, for bodies, forms and files alike."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _check_text(text: str, loc: tuple[str | int, ...]) -> None:
    if "\x00" in text:
        raise BadBody("NUL characters are not accepted", loc)
    if not storable(text):
        raise BadBody("text must be valid Unicode (a lone surrogate was sent)", loc)


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def refuse_bad_input(request: Request) -> None:
    """Refuse (422) a body found at fault, and NUL characters in the path or query."""
    problem: BadBody | None = request.scope.get(_PROBLEM)
    if problem is not None:  # named where it is (the field with a NUL), if it is a field
        raise InvalidInput([FieldProblem(problem.loc, str(problem))], part="body")
    # Decoded: a NUL sent as %00 is a NUL all the same (PostgreSQL refuses it in text).
    decoded = [request.scope["path"], *(f"{k}={v}" for k, v in request.query_params.multi_items())]
    if any("\x00" in part for part in decoded):
        raise InvalidInput([FieldProblem((), "NUL characters are not accepted")], part="query")
