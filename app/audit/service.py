"""Appending to and reading the audit trail; appends share the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.audit.chain import HASHED_FIELDS, ChainBreak, canonical, check_chain, record_hash
from app.audit.models import AuditChainHead, AuditRecord
from app.auth.principal import Principal

SYSTEM_ACTOR = "system"


def record(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    entity_type: str,
    entity_id: str | int,
    now: datetime,
    study_id: int | None = None,
    reason: str | None = None,
    changes: dict[str, Any] | None = None,
) -> str:
    """Append one record, chained to the last, in the caller's transaction.

    The chain head row is locked until the transaction ends, so appends from many
    processes line up one after the other. Lock order: the study row, the head (taken
    early by study-scoped writes, see `studies.service.get_study`), then the rows the
    unit of work changes. Returns the new record's hash.
    """
    seq, prev_hash = hold_chain(session)
    fields: dict[str, Any] = {
        "seq": seq + 1,
        "at": now,
        "actor_id": actor.id if actor else None,
        "actor": actor.email if actor else SYSTEM_ACTOR,
        "action": action,
        "study_id": study_id,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "reason": reason,
        "changes": canonical(changes or {}),
    }
    digest = record_hash(fields, prev_hash)
    session.execute(_INSERT_RECORD, {**fields, "prev_hash": prev_hash, "hash": digest})
    session.execute(_UPDATE_HEAD, {"new_seq": seq + 1, "new_hash": digest})
    session.info[_HEAD_KEY] = (_transaction(session), seq + 1, digest)
    return digest


def hold_chain(session: Session) -> tuple[int, str]:
    """Lock the chain's head for this transaction (if not yet) and return it.

    A unit of work that locks contended rows of its own (a site's counter, a
    stratum) calls this first, so it never holds such a row while queueing for the
    head: the queue then stays first come, first served.
    """
    transaction = _transaction(session)
    cached = session.info.get(_HEAD_KEY)
    if cached is not None and cached[0] is transaction:
        return cached[1], cached[2]  # this transaction already holds the head's lock
    seq, prev_hash = session.execute(_SELECT_HEAD).one()
    session.info[_HEAD_KEY] = (transaction, seq, prev_hash)
    return seq, prev_hash


def _transaction(session: Session) -> object:
    # The innermost transaction: a savepoint rolled back must not leave a head that
    # was never stored.
    return session.get_nested_transaction() or session.get_transaction()


_HEAD_KEY = "trialdesk_audit_head"

# Built once: every change of state appends here, and building SQLAlchemy statements
# per call was the largest single cost of a write request.
_head = AuditChainHead.__table__
_SELECT_HEAD = select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
_UPDATE_HEAD = (
    update(_head)
    .where(_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_INSERT_RECORD = insert(AuditRecord.__table__)


def change(old: Any, new: Any) -> dict[str, Any]:
    """One field's change, as audit records store it."""
    return {"old": old, "new": new}


def list_records(
    session: Session, *, study_id: int | None, after_seq: int, limit: int
) -> Sequence[AuditRecord]:
    """Records oldest first, after a cursor; those of one study when `study_id` is given."""
    query = select(AuditRecord).where(AuditRecord.seq > after_seq)
    if study_id is not None:
        query = query.where(AuditRecord.study_id == study_id)
    return session.scalars(query.order_by(AuditRecord.seq).limit(limit)).all()


def verify_chain(session: Session) -> list[ChainBreak]:
    """Re-hash the whole trail and check every link and the head."""
    rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).yield_per(1000)
    records = (
        {name: getattr(r, name) for name in (*HASHED_FIELDS, "prev_hash", "hash")} for r in rows
    )
    breaks = check_chain(records)
    head = session.get(AuditChainHead, 1)
    last = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).first()
    if head is not None and last is not None and (head.seq, head.hash) != (last.seq, last.hash):
        breaks.append(ChainBreak(head.seq, "the chain head does not match the last record"))
    return breaks
