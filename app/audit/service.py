"""Appending to and reading the audit trail; appends share the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.chain import HASHED_FIELDS, ChainBreak, check_chain, record_hash
from app.audit.models import AuditChainHead, AuditRecord
from app.auth.models import User

SYSTEM_ACTOR = "system"


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    entity_type: str,
    entity_id: str | int,
    now: datetime,
    study_id: int | None = None,
    reason: str | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record, chained to the last; call it last in a unit of work.

    The chain head row is locked until the transaction ends, so appends from many
    processes line up one after the other; taking it last keeps lock order the same
    everywhere (entity rows first, the head last), which rules out deadlocks.
    """
    head = session.scalars(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).one()
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "at": now,
        "actor_id": actor.id if actor else None,
        "actor": actor.email if actor else SYSTEM_ACTOR,
        "action": action,
        "study_id": study_id,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "reason": reason,
        "changes": changes or {},
    }
    digest = record_hash(fields, head.hash)
    entry = AuditRecord(**fields, prev_hash=head.hash, hash=digest)
    session.add(entry)
    head.seq, head.hash = entry.seq, digest
    session.flush()
    return entry


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
