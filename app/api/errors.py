"""The one place where errors become HTTP responses (RFC 9457 problem details)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app import errors

log = logging.getLogger("trialdesk.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="full path to the field, e.g. body.strata.diagnosis")
    msg: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem: every error answer has this shape."""

    type: str = Field(description="`urn:trialdesk:problem:<code>` or `about:blank`")
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="422 only: every problem")


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "model": ProblemDetails,
        "description": description,
        "content": {
            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
        },
    }


# Documented on every router, so /docs shows the problem shape clients will get.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem_response("Missing or unknown token"),
    403: _problem_response("The role may not do this"),
    404: _problem_response("Not found, or outside the caller's sites"),
    409: _problem_response("Conflicts with the current state"),
    413: _problem_response("The body is larger than this route takes"),
    422: _problem_response("Invalid input; `errors` lists every problem"),
    429: _problem_response("Too many failed attempts from this address; see Retry-After"),
    503: _problem_response("A database lock or request slot stayed taken; see Retry-After"),
}

# Survey links add 410: a link replaced by a newer one, whose survey closed, or whose
# survey was cancelled (the participant withdrew). A survey completed or not open yet
# is 409.
SURVEY_LINK_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    410: _problem_response("The link was replaced, its survey closed or was cancelled"),
}

STATUS_BY_ERROR: list[tuple[type[errors.DomainError], int]] = [
    (errors.NotAuthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.SurveyLinkGone, 410),
    (errors.Conflict, 409),
    (errors.InvalidInput, 422),
    (errors.Busy, 503),
    (errors.TooManyAttempts, 429),
]


class ProblemResponse(JSONResponse):
    """A problem document, written in ASCII: whatever text a client sent (a lone
    surrogate in a key, say) can be echoed without failing to encode."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def problem(
    status: int, title: str, detail: str, *, type_: str = "about:blank", **extra: Any
) -> JSONResponse:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ProblemResponse(body, status_code=status, headers=headers)


def status_of(exc: errors.DomainError) -> int:
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(exc, kind)), 400)


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.InvalidInput):
        # Services name paths within a part of the request; clients expect them rooted there.
        extra["errors"] = [{"loc": [exc.part, *p.loc], "msg": p.msg} for p in exc.problems]
    # A conflict may name what it conflicts with (an incentive entry's state), for clients.
    extra.update(getattr(exc, "fields", {}))
    response = problem(
        status_of(exc), exc.title, exc.detail, type_=f"urn:trialdesk:problem:{exc.code}", **extra
    )
    if isinstance(exc, errors.Busy):
        response.headers["Retry-After"] = "1"
    if isinstance(exc, errors.TooManyAttempts):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    detail = "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in problems)
    return problem(
        422, "Invalid input", detail, type_="urn:trialdesk:problem:invalid-input", errors=problems
    )


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = problem(exc.status_code, _reason(exc.status_code), str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # A unique or foreign key the checks before the insert could not see (a concurrent
    # request won the race): the request conflicts with what is now stored.
    log.info("integrity error mapped to 409: %s", exc.__class__.__name__)
    return problem(409, "Conflict", "the request conflicts with a concurrent change; retry")


def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("data error mapped to 422: %s", str(getattr(exc, "orig", exc))[:200])
    return problem(422, "Invalid input", "a value cannot be stored (out of range or invalid)")


def _database_busy(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc.__class__.__name__)
    response = problem(503, "Service Unavailable", "the database is busy; try again")
    response.headers["Retry-After"] = "1"
    return response


# nginx's code for "the client closed the connection before the answer": no one reads
# the answer, and it is no fault of the server (no traceback).
CLIENT_CLOSED_REQUEST = 499


def _client_gone(_request: Request, _exc: Exception) -> Response:
    log.info("the client disconnected before its request was read")
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal Server Error", "an unexpected error occurred; it was logged")


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


Handler = Callable[[Request, Exception], Response]


def _for_route(handler: Handler) -> Handler:
    """The handler, giving the route the last word: a route with an `error_page` method
    (the survey pages) turns the problem into a page a person can read, with the same
    status and headers. Handlers run after the request's dependencies have exited, so a
    failed request's transaction is rolled back whichever way its error is shown."""

    def handle(request: Request, exc: Exception) -> Response:
        response = handler(request, exc)
        error_page = getattr(request.scope.get("route"), "error_page", None)
        if error_page is None:
            return response
        rendered: Response = error_page(request, exc, response)
        return rendered

    return handle


def install(app: FastAPI) -> None:
    """Register the handlers on the application."""
    for kind, handler in (
        (errors.DomainError, _domain_error),
        (RequestValidationError, _validation_error),
        (StarletteHTTPException, _http_error),
        (IntegrityError, _integrity_error),
        (DataError, _data_error),
        (OperationalError, _database_busy),
        (TimeoutError, _database_busy),
        (PoolTimeout, _database_busy),
        (Exception, _unexpected),
    ):
        app.add_exception_handler(kind, _for_route(handler))
    app.add_exception_handler(ClientDisconnect, _client_gone)  # no page for no one
