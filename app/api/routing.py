"""The route class every router uses: one transaction per request, and idempotency.

The transaction is opened before the endpoint runs and committed after the response
is rendered but before it is sent, so a failed commit is an error response, never a
success the database forgot. Creating POSTs with an `Idempotency-Key` store their
response in that same transaction, so a retry gets exactly what the first call got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from app.auth.service import hash_token
from app.db.base import utcnow
from app.db.engine import Database
from app.errors import FieldProblem, InvalidInput
from app.idempotency import service as idempotency

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255


class TransactionalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        endpoint = super().get_route_handler()

        async def handler(request: Request) -> Response:
            db: Database = request.app.state.db
            write = request.method not in READ_METHODS
            if write and db.write_gate is not None:
                async with db.write_gate, db.request_slots:
                    return await _run(request, endpoint, db, write=True)
            async with db.request_slots:
                return await _run(request, endpoint, db, write=write)

        return handler


async def _run(
    request: Request,
    endpoint: Callable[[Request], Awaitable[Response]],
    db: Database,
    *,
    write: bool,
) -> Response:
    key = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
    claim_id: int | None = None
    if key:
        outcome = await _claim(request, db, key)
        if isinstance(outcome, Response):
            return outcome
        claim_id = outcome
    session = db.session(write=write)
    request.state.session = session
    try:
        try:
            response = await endpoint(request)
            if response.status_code >= 400:
                await run_in_threadpool(session.rollback)
            else:
                if claim_id is not None:
                    stored = idempotency.StoredResponse(
                        response.status_code,
                        bytes(response.body).decode(),
                        response.media_type or "",
                    )
                    await run_in_threadpool(
                        idempotency.complete,
                        session,
                        claim_id=claim_id,
                        response=stored,
                        now=utcnow(),
                    )
                await run_in_threadpool(session.commit)
                claim_id = None
            return response
        except BaseException:
            await run_in_threadpool(session.rollback)
            raise
    finally:
        await run_in_threadpool(session.close)
        if claim_id is not None:
            await run_in_threadpool(_release, db, claim_id)


async def _claim(request: Request, db: Database, key: str) -> int | Response:
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput([FieldProblem(("Idempotency-Key",), "at most 255 characters")])
    body = await request.body()
    auth = request.headers.get("authorization", "")
    scope = hash_token(auth)
    fp = idempotency.fingerprint(method=request.method, path=request.url.path, body=body)

    def claim() -> int | idempotency.StoredResponse:
        with db.begin() as session:
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


def _release(db: Database, claim_id: int) -> None:
    with db.begin() as session:
        idempotency.release(session, claim_id=claim_id)
