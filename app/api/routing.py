"""The route class every router uses: one transaction per request, and idempotency.

A request's transaction runs, start to commit, inside the single worker thread that
runs its endpoint: the endpoint is wrapped so that its session is committed right
after it returns, before FastAPI renders and sends the response. So a failed commit is
an error answer, never a success the database forgot, and row locks (or SQLite's write
lock) are never held while the request waits for the event loop or another thread.

A POST with an `Idempotency-Key` first claims the key in a short transaction of its
own (a concurrent duplicate sees the claim and gets 409); the endpoint's transaction
then stores the response with the work it describes, so a retry gets exactly what the
first call got; a request that fails releases its claim.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth.service import hash_token
from app.db.base import utcnow
from app.db.engine import Database
from app.errors import FieldProblem, InvalidInput
from app.idempotency import service as idempotency

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
_UNIT = "trialdesk_unit"


@dataclass
class Unit:
    """What the endpoint's thread needs to finish the request's transaction."""

    gate: Callable[[], AbstractContextManager[object]]
    claim_id: int | None = None
    completed: bool = False


class TransactionalRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        status_code = kwargs.get("status_code") or 200
        super().__init__(path, _in_one_transaction(endpoint, status_code), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            db: Database = request.app.state.db
            async with db.request_slots:
                return await _handle(request, handle, db)

        return handler


def _in_one_transaction(endpoint: Callable[..., Any], status_code: int) -> Callable[..., Any]:
    """Wrap a (sync) endpoint: run it and commit its session in the same thread."""
    if inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint.__name__}: Trialdesk endpoints are plain `def` functions")

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        session = next((v for v in kwargs.values() if isinstance(v, Session)), None)
        if session is None:
            return endpoint(*args, **kwargs)
        unit: Unit = session.info[_UNIT]
        with unit.gate():
            try:
                result = endpoint(*args, **kwargs)
                if unit.claim_id is not None:
                    body = json.dumps(
                        jsonable_encoder(result), ensure_ascii=False, separators=(",", ":")
                    )
                    stored = idempotency.StoredResponse(status_code, body, "application/json")
                    idempotency.complete(
                        session, claim_id=unit.claim_id, response=stored, now=utcnow()
                    )
                session.commit()
                unit.completed = True
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    return run


async def _handle(
    request: Request, handle: Callable[[Request], Awaitable[Response]], db: Database
) -> Response:
    write = request.method not in READ_METHODS
    unit = Unit(gate=db.write_gate if write else nullcontext)
    key = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
    if key:
        outcome = await _claim(request, db, key)
        if isinstance(outcome, Response):
            return outcome
        unit.claim_id = outcome
    session = db.session(write=write)
    session.info[_UNIT] = unit
    request.state.session = session
    try:
        response = await handle(request)
    finally:
        if session.in_transaction():  # something used the session outside the endpoint
            await run_in_threadpool(_rollback_and_close, session)
        else:
            session.close()
        if unit.claim_id is not None and not unit.completed:
            await run_in_threadpool(_release, db, unit.claim_id)
    return response


async def _claim(request: Request, db: Database, key: str) -> int | Response:
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            [FieldProblem(("Idempotency-Key",), "at most 255 characters")], part="header"
        )
    body = await request.body()
    scope = hash_token(request.headers.get("authorization", ""))
    fp = idempotency.fingerprint(method=request.method, path=request.url.path, body=body)

    def claim() -> int | idempotency.StoredResponse:
        with db.write_gate(), db.begin() as session:
            return idempotency.claim(session, scope=scope, key=key, fingerprint=fp, now=utcnow())

    outcome = await run_in_threadpool(claim)
    if isinstance(outcome, idempotency.StoredResponse):
        return Response(
            outcome.body,
            status_code=outcome.status,
            media_type=outcome.media_type or None,
            headers={"Idempotent-Replayed": "true"},
        )
    return outcome


def _rollback_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


def _release(db: Database, claim_id: int) -> None:
    with db.write_gate(), db.begin() as session:
        idempotency.release(session, claim_id=claim_id)
