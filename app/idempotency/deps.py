"""`Idempotency-Key` on POSTs that change something: the dependency they declare.

    def enroll(..., session: SessionDep, idempotency: IdempotencyDep, ...):
        ...
        return idempotency.remember(answer)

Once the caller is authenticated, the key is claimed in a transaction of its own, so a
concurrent request with the same key sees the claim and gets 409. The answer is stored
by `remember` in the request's own transaction, so it commits with the work it
describes and a retry gets what the first call got. A request that fails releases its
claim, so the client may retry with the same key.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.deps import SessionDep
from app.auth.deps import CurrentUser
from app.db.base import utcnow
from app.idempotency import service
from app.idempotency.service import StoredResponse

MAX_KEY_LENGTH = 255


class IdempotentReplay(Exception):
    """The key was used before with this request: answer what the first call got."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("idempotent replay")
        self.stored = stored


class Idempotency:
    """One request's key, if it sent one, and the claim it holds."""

    def __init__(self, session: Session, claim_id: int | None, status_code: int) -> None:
        self.session = session
        self.claim_id = claim_id
        self.status_code = status_code
        self.remembered = False

    def remember(self, answer: BaseModel) -> Response:
        """Keep the answer for replays (in the request's transaction); answer it.

        Fields a schema lists in `shown_once` (a new token) are not kept: a replay
        answers them as null. The answer is encoded here, once, and sent as it is:
        FastAPI then has no response to serialize in another thread while the request
        still holds its transaction (and, with SQLite, the write lock).
        """
        content = answer.model_dump(mode="json")
        if self.claim_id is not None:
            kept = dict(content)
            for name in getattr(type(answer), "shown_once", ()):
                kept[name] = None
            body = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
            stored = StoredResponse(self.status_code, body, "application/json")
            service.complete(self.session, claim_id=self.claim_id, response=stored, now=utcnow())
        self.remembered = True
        return JSONResponse(content, status_code=self.status_code)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


async def get_idempotency(
    request: Request,
    session: SessionDep,
    caller: CurrentUser,  # authenticates first: an unknown token claims nothing
    body: Annotated[bytes, Depends(_raw_body)],
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=MAX_KEY_LENGTH,
            description="the same key with the same body replays the first answer",
        ),
    ] = None,
) -> AsyncIterator[Idempotency]:
    """Claim the request's key (after authentication), replay a finished one, and
    release the claim if the request fails.

    `async`, and touching the database (in a worker thread) only when a key was sent:
    a request without one pays no extra trip between threads while it holds its locks.
    """
    status_code = getattr(request.scope.get("route"), "status_code", None) or 200
    if key is None:
        yield Idempotency(session, None, status_code)
        return
    scope = service.user_scope(caller.id)
    ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
    claim = Claim(scope, key, request.method, request.url.path, body, ttl)
    outcome = await run_in_threadpool(_claim, session, claim)
    if isinstance(outcome, StoredResponse):
        raise IdempotentReplay(outcome)
    idempotency = Idempotency(session, outcome, status_code)
    try:
        yield idempotency
        if not idempotency.remembered:
            raise RuntimeError(f"{request.url.path}: the endpoint did not call remember()")
    except BaseException:
        await run_in_threadpool(_release, session, outcome)
        raise


@dataclass(frozen=True)
class Claim:
    scope: str
    key: str
    method: str
    path: str
    body: bytes
    ttl: timedelta


def _claim(session: Session, claim: Claim) -> int | StoredResponse:
    # In a worker thread: the body may be large, and fingerprinting parses it.
    fingerprint = service.fingerprint(method=claim.method, path=claim.path, body=claim.body)
    outcome = service.claim(
        session,
        scope=claim.scope,
        key=claim.key,
        fingerprint=fingerprint,
        now=utcnow(),
        ttl=claim.ttl,
    )
    session.commit()  # the claim is seen by concurrent requests before the work begins
    return outcome


def _release(session: Session, claim_id: int) -> None:
    # Same connection as the failed work, rolled back first: no second writer to wait for.
    session.rollback()
    service.release(session, claim_id=claim_id)
    session.commit()


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency, scope="function")]


def _replay(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    stored = exc.stored
    return Response(
        stored.body,
        status_code=stored.status,
        media_type=stored.media_type or None,
        headers={"Idempotent-Replayed": "true"},
    )


def install(app: FastAPI) -> None:
    """Answer replays with the stored response."""
    app.add_exception_handler(IdempotentReplay, _replay)
