"""The route class every router uses: one transaction per request, and idempotency.

A request's transaction runs, start to commit, inside the single worker thread that
runs its endpoint: the endpoint is wrapped so that its session is committed right
after it returns, before FastAPI renders and sends the response. So a failed commit is
an error answer, never a success the database forgot, and row locks (or SQLite's write
lock) are never held while the request waits for the event loop or another thread.
Whether a request writes is declared by the session it asks for (`SessionDep` or
`ReadSessionDep`), not guessed from its method.

A POST with an `Idempotency-Key`, once authenticated and validated, first claims the
key in a short transaction of its own (a concurrent duplicate sees the claim and gets
409); the endpoint's transaction then stores the response with the work it describes,
so a retry gets what the first call got; a request that fails releases its claim.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Annotated, Any, get_origin, get_type_hints

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from app.auth.service import hash_token
from app.db.base import utcnow
from app.db.engine import Database
from app.errors import FieldProblem, InvalidInput
from app.idempotency import service as idempotency

log = logging.getLogger("trialdesk.routing")

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
UNIT = "trialdesk_unit"


@dataclass
class Unit:
    """One request's unit of work: its database and its Idempotency-Key, if any."""

    db: Database
    write: bool = False
    key: str | None = None
    scope: str = ""
    fingerprint: str = ""


class TransactionalRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        status_code = kwargs.get("status_code") or 200
        super().__init__(path, _in_one_transaction(endpoint, status_code), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            db: Database = request.app.state.db
            # The body is read before a slot is taken: a slow client must not hold one.
            body = await request.body()
            async with db.request_slots:
                return await _handle(request, handle, db, body)

        return handler


async def _handle(
    request: Request, handle: Callable[[Request], Awaitable[Response]], db: Database, body: bytes
) -> Response:
    if "\x00" in request.url.path or "\x00" in request.url.query or _has_nul(body):
        # PostgreSQL cannot store NUL in text; refuse it at the door for both backends.
        raise InvalidInput([FieldProblem(("request",), "NUL characters are not accepted")])
    unit = Unit(db)
    key = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
    if key:
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(
                [FieldProblem(("Idempotency-Key",), f"at most {MAX_KEY_LENGTH} characters")],
                part="header",
            )
        unit.key = key
        unit.scope = hash_token(request.headers.get("authorization", ""))
        unit.fingerprint = idempotency.fingerprint(
            method=request.method, path=request.url.path, body=body
        )
    request.state.unit = unit
    try:
        return await handle(request)
    finally:
        session: Session | None = getattr(request.state, "session", None)
        if session is not None:
            if session.in_transaction():  # used outside the endpoint: a bug, never silent
                log.error("session left in a transaction by %s", request.url.path)
            session.close()


def _has_nul(body: bytes) -> bool:
    return b"\x00" in body or b"\\u0000" in body


def _in_one_transaction(endpoint: Callable[..., Any], status_code: int) -> Callable[..., Any]:
    """Wrap a (sync) endpoint: claim its key, run it, commit, all in its one thread."""
    if inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint.__name__}: Trialdesk endpoints are plain `def` functions")
    hints = get_type_hints(endpoint, include_extras=True)
    names = [n for n, h in hints.items() if get_origin(h) is Annotated and h.__origin__ is Session]
    if len(names) != 1:
        # The wrapper commits the session it is handed; one reached only through another
        # dependency would never be committed while the client heard "success".
        raise TypeError(f"{endpoint.__name__}: take exactly one SessionDep or ReadSessionDep")
    session_parameter = names[0]

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        session: Session = kwargs[session_parameter]
        unit: Unit = session.info[UNIT]
        claim_id: int | None = None
        if unit.key is not None and unit.write:
            outcome = _claim(unit)
            if isinstance(outcome, idempotency.StoredResponse):
                return Response(
                    outcome.body,
                    status_code=outcome.status,
                    media_type=outcome.media_type or None,
                    headers={"Idempotent-Replayed": "true"},
                )
            claim_id = outcome
        committing = False
        try:
            with unit.db.write_gate() if unit.write else nullcontext():
                try:
                    result = endpoint(*args, **kwargs)
                    if claim_id is not None:
                        _store(session, claim_id, status_code, result)
                    committing = True
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
                finally:
                    session.close()
        except BaseException:
            # A failed COMMIT may still have gone through: then the claim stays, and a
            # retry waits for it to be abandoned rather than doing the work twice.
            if claim_id is not None and not committing:
                _release(unit.db, claim_id)
            raise
        return result

    return run


def _claim(unit: Unit) -> int | idempotency.StoredResponse:
    assert unit.key is not None
    with unit.db.write_gate(), unit.db.begin() as session:
        return idempotency.claim(
            session, scope=unit.scope, key=unit.key, fingerprint=unit.fingerprint, now=utcnow()
        )


def _store(session: Session, claim_id: int, status_code: int, result: Any) -> None:
    """Keep the response for replays, minus what may be shown only once (tokens)."""
    content = jsonable_encoder(result)
    for name in getattr(type(result), "shown_once", ()):
        content[name] = None
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    stored = idempotency.StoredResponse(status_code, body, "application/json")
    idempotency.complete(session, claim_id=claim_id, response=stored, now=utcnow())


def _release(db: Database, claim_id: int) -> None:
    """Best effort: the request's own error is what the client must hear."""
    try:
        with db.write_gate(), db.begin() as session:
            idempotency.release(session, claim_id=claim_id)
    except Exception:
        log.exception("could not release idempotency claim %s", claim_id)
