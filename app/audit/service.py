"""Appending to and reading the audit trail; appends share the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from app.audit.actions import AuditAction
from app.audit.chain import HASHED_FIELDS, ChainBreak, canonical, check_chain, record_hash
from app.audit.models import AuditChainHead, AuditRecord
from app.auth.principal import Principal
from app.db.base import utcnow
from app.errors import StudyNotFound
from app.logging import request_id
from app.metrics import PENDING_EVENTS, WAITS

SYSTEM_ACTOR = "system"

Change = tuple[Any, Any]  # (old, new)


def record(
    session: Session,
    action: AuditAction,
    *,
    actor: Principal | None,
    entity_id: str | int,
    study_id: int | None = None,
    reason: str | None = None,
    changes: Mapping[str, Change] | None = None,
    actor_label: str = SYSTEM_ACTOR,
) -> str:
    """Append one record, chained to the last, in the caller's transaction; return its hash.

    `changes` maps each field to its `(old, new)` values; without a staff `actor`, the
    record names `actor_label` (the system, or a participant). The record's time is the
    transaction's (see `lock_chain_head`). The chain head's row stays locked until the
    transaction ends, so appends from many processes line up.
    """
    head = lock_chain_head(session)
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "at": head.at,
        "actor_id": actor.id if actor else None,
        "actor": actor.email if actor else actor_label,
        "action": action.value,
        "study_id": study_id,
        "entity_type": action.entity_type,
        "entity_id": str(entity_id),
        "reason": reason,
        "changes": canonical(
            {name: {"old": old, "new": new} for name, (old, new) in (changes or {}).items()}
        ),
        "request_id": request_id.get(),
    }
    digest = record_hash(fields, head.hash)
    session.execute(_INSERT_RECORD, {**fields, "prev_hash": head.hash, "hash": digest})
    session.execute(_UPDATE_HEAD, {"new_seq": head.seq + 1, "new_hash": digest})
    session.info[_HEAD_KEY] = (_transaction(session), ChainHead(head.seq + 1, digest, head.at))
    session.info.setdefault(PENDING_EVENTS, []).append(action.value)  # counted at commit
    return digest


@dataclass(frozen=True)
class ChainHead:
    """The last record's seq and hash, and the time of the transaction holding them."""

    seq: int
    hash: str
    at: datetime


def lock_chain_head(session: Session) -> ChainHead:
    """Lock the chain's head row for this transaction (if not yet) and return it, with
    the time of the transaction's changes.

    Every write appends to the chain, so every write takes this lock. The order is one
    everywhere: the study's row, then this head, then the participant, stratum or site
    rows the change touches. A use case that locks such rows calls this first, so it
    never holds a contended row while it queues for the head: writers then queue first
    come, first served.

    The clock is read once the lock is held, and never earlier than the last record
    (whose writer may have run on a host whose clock is ahead): so times never run
    backwards along the chain, nor along a stratum's allocations, which are taken
    under the head too. Use it as the time of everything the transaction records.
    """
    transaction = _transaction(session)
    cached = session.info.get(_HEAD_KEY)
    if cached is not None and cached[0] is transaction:
        held: ChainHead = cached[1]  # this transaction already holds the head's lock
        return held
    with WAITS.labels("audit_chain_head").time():
        seq, prev_hash = session.execute(_SELECT_HEAD).one()
    at = utcnow()
    if seq:
        last = session.scalar(_SELECT_RECORD_AT, {"seq": seq})
        if last is not None and last > at:
            at = last
    head = ChainHead(seq, prev_hash, at)
    session.info[_HEAD_KEY] = (transaction, head)
    return head


def _transaction(session: Session) -> object:
    # The innermost transaction: a savepoint rolled back must not leave a head that
    # was never stored.
    return session.get_nested_transaction() or session.get_transaction()


_HEAD_KEY = "trialdesk_audit_head"

# Built once: every change of state appends here, and building SQLAlchemy statements
# per call was the largest single cost of a write request.
_head = cast(Table, AuditChainHead.__table__)
_SELECT_HEAD = select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
_UPDATE_HEAD = (
    update(_head)
    .where(_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_INSERT_RECORD = insert(cast(Table, AuditRecord.__table__))
_SELECT_RECORD_AT = select(AuditRecord.at).where(AuditRecord.seq == bindparam("seq"))


def list_records(
    session: Session,
    *,
    study_id: int | None,
    after_seq: int,
    limit: int,
    entity: str | None = None,
    action: str | None = None,
    actor: str | None = None,
) -> Sequence[AuditRecord]:
    """Records oldest first, after a cursor; those of one study when `study_id` is given,
    of one entity (`PS-PHL-001`, and its parts such as `PS-PHL-001:baseline`), of one
    action, or by one actor when those are."""
    query = select(AuditRecord).where(AuditRecord.seq > after_seq)
    if study_id is not None:
        query = query.where(AuditRecord.study_id == study_id)
    if entity is not None:
        escaped = entity.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            or_(
                AuditRecord.entity_id == entity,
                AuditRecord.entity_id.like(f"{escaped}:%", escape="\\"),
            )
        )
    if action is not None:
        query = query.where(AuditRecord.action == action)
    if actor is not None:
        query = query.where(AuditRecord.actor == actor)
    return session.scalars(query.order_by(AuditRecord.seq).limit(limit)).all()


def study_id_of(session: Session, *, slug: str) -> int:
    """The id of the study with this slug, found by its creation record (the trail
    knows every study without asking the studies package); StudyNotFound if none."""
    found = session.scalar(
        select(AuditRecord.study_id).where(
            AuditRecord.action == AuditAction.study_created.value, AuditRecord.entity_id == slug
        )
    )
    if found is None:
        raise StudyNotFound(f"no study {slug!r}")
    return found


def latest_change(
    session: Session, *, study_id: int, action: AuditAction, field: str
) -> Any | None:
    """The new value of `field` in the study's latest record of this action, if any."""
    found = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.study_id == study_id, AuditRecord.action == action.value)
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    change = found.changes.get(field)
    return change.get("new") if isinstance(change, dict) else None


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
