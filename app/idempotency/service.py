"""Idempotency keys: claim before the work, complete in the work's own transaction."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.server_key import keys_of, sealing_keys_of
from app.errors import IdempotencyKeyInProgress, IdempotencyKeyReused
from app.idempotency.models import IdempotencyKey
from app.keys import Use

# A claim older than this whose request never finished (a crashed process) may be taken
# over; the request's own transaction never committed, so nothing was created.
ABANDONED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    media_type: str


def user_scope(user_id: int) -> str:
    """Whose keys an API request's are: its user's, whichever of their tokens it sent (a
    retry after a token rotation is the same user's retry; another user's same key is
    another request)."""
    return f"user:{user_id}"


def fingerprint(*, method: str, path: str, body: bytes) -> str:
    """What makes two requests 'the same' for a key: method, path and body (as JSON
    when it parses, so spacing and key order do not matter)."""
    with contextlib.suppress(ValueError, RecursionError):
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def claim(
    session: Session, *, scope: str, key: str, fingerprint: str, now: datetime, ttl: timedelta
) -> int | StoredResponse:
    """Claim the key (returns the claim's id) or return the stored first response.

    Runs in its own short transaction, committed before the request's work begins, so
    a second request with the key sees the claim and is told it is still running. A key
    older than `ttl` is forgotten: it may be used again as if new.
    """
    _prune(session, now=now, ttl=ttl)
    existing = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    ).first()
    if existing is not None and now - existing.created_at >= ttl:
        session.delete(existing)
        session.flush()
        existing = None
    if existing is None:
        row = IdempotencyKey(scope=scope, key=key, fingerprint=fingerprint, created_at=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another process claimed it between our read and insert
            raise IdempotencyKeyInProgress() from None
        return row.id
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if existing.completed_at is not None:
        assert existing.response_status is not None and existing.response_body is not None
        body = _unseal(session, existing, existing.response_body)
        return StoredResponse(existing.response_status, body, existing.response_media_type or "")
    if now - existing.created_at < ABANDONED_AFTER:
        raise IdempotencyKeyInProgress()
    # Take over an abandoned claim atomically: of several retries only one may win.
    taken = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == existing.id,
            IdempotencyKey.completed_at.is_(None),
            IdempotencyKey.created_at == existing.created_at,
        )
        .values(created_at=now)
        .returning(IdempotencyKey.id)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        raise IdempotencyKeyInProgress()
    return existing.id


def complete(session: Session, *, claim_id: int, response: StoredResponse, now: datetime) -> None:
    """Store the response in the request's transaction, so it commits with the work.

    The body is sealed with a key derived from the server key and bound to the key's
    scope: an answer may carry contact details, an arm or a secret, and a copy of the
    database must not show them.
    """
    row = session.get(IdempotencyKey, claim_id)
    if row is None:  # released meanwhile (cannot happen while we hold the claim)
        return
    sealed = sealing_keys_of(session).seal(
        Use.idempotency, response.body.encode(), context=_context(row)
    )
    row.response_status = response.status
    row.response_body = base64.b64encode(sealed).decode()
    row.response_media_type = response.media_type
    row.completed_at = now
    session.flush()


def release(session: Session, *, claim_id: int) -> None:
    """Forget a claim whose request failed, so the client may retry with the same key."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.id == claim_id, IdempotencyKey.completed_at.is_(None)
        )
    )


PRUNE_EVERY = timedelta(minutes=10)
_last_prune: datetime | None = None


def _prune(session: Session, *, now: datetime, ttl: timedelta) -> None:
    """Delete expired keys, at most every few minutes per process (in the claim's
    transaction, which writes anyway)."""
    global _last_prune
    if _last_prune is not None and now - _last_prune < PRUNE_EVERY:
        return
    _last_prune = now
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - ttl))


def _context(row: IdempotencyKey) -> str:
    return f"{row.scope}:{row.key}"


def _unseal(session: Session, row: IdempotencyKey, stored: str) -> str:
    sealed = base64.b64decode(stored)
    return keys_of(session).open(Use.idempotency, sealed, context=_context(row)).decode()
