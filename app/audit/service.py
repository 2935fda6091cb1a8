"""Appending to and reading the audit trail; appends share the caller's transaction.

Each record is MACed into the keyed chain (`chain.record_mac`), its reason and changes
sealed at rest, and the head anchored outside the database after the transaction
commits (`anchors`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, insert, or_, select, update
from sqlalchemy import text as _text
from sqlalchemy.orm import Session, SessionTransaction

from app.audit import anchors
from app.audit.actions import AuditAction
from app.audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainBreak,
    canonical,
    check_chain,
    record_mac,
    seal_context,
    sealed_document,
)
from app.audit.models import AuditChainHead, AuditRecord
from app.auth.principal import Principal
from app.db.base import utcnow
from app.db.engine import STATE_DIR_INFO
from app.db.server_key import keys_of, sealing_keys_of
from app.db.triggers import triggers_lifted
from app.errors import Conflict, StudyNotFound
from app.keys import Keys, Use, WrongKey
from app.logging import request_id
from app.metrics import PENDING_EVENTS, WAITS

log = logging.getLogger("trialdesk.audit")

SYSTEM_ACTOR = "system"

Change = tuple[Any, Any]  # (old, new)


class AuditChainBroken(Conflict):
    """The chain or its anchors do not verify: nothing is re-keyed."""


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
    transaction ends, so appends from many processes line up. The reason and changes
    are sealed; the hash is an HMAC of the plain record (only the key holder can check
    or forge it). Once the transaction commits, the new head is anchored.
    """
    head = lock_chain_head(session)
    keys = sealing_keys_of(session)
    chain_id = head.chain_id or uuid.uuid4().hex  # the first record names the chain
    seq = head.seq + 1
    fields: dict[str, Any] = {
        "seq": seq,
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
    digest = record_mac(fields, head.hash, key=keys.derived(Use.audit_chain), chain_id=chain_id)
    document = sealed_document(reason=reason, changes=fields.pop("changes"))
    del fields["reason"]
    sealed = keys.seal(Use.audit_record, document, context=seal_context(seq))
    session.execute(
        _INSERT_RECORD, {**fields, "sealed": sealed, "prev_hash": head.hash, "hash": digest}
    )
    session.execute(_UPDATE_HEAD, {"new_seq": seq, "new_hash": digest, "chain_id": chain_id})
    new_head = ChainHead(seq, digest, head.at, chain_id)
    transaction = _transaction(session)
    session.info[_HEAD_KEY] = (transaction, new_head)
    session.info.setdefault(_PENDING_ANCHOR, []).append((transaction, new_head))
    session.info.setdefault(PENDING_EVENTS, []).append(action.value)  # counted at commit
    return digest


@dataclass(frozen=True)
class ChainHead:
    """The last record's seq and hash, the time of the transaction holding them, and
    the chain's id (None before the first record)."""

    seq: int
    hash: str
    at: datetime
    chain_id: str | None = None


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
        seq, prev_hash, chain_id = session.execute(_SELECT_HEAD).one()
    at = utcnow()
    if seq:
        last = session.scalar(_SELECT_RECORD_AT, {"seq": seq})
        if last is not None and last > at:
            at = last
    head = ChainHead(seq, prev_hash, at, chain_id)
    session.info[_HEAD_KEY] = (transaction, head)
    return head


def _transaction(session: Session) -> object:
    # The innermost transaction: a savepoint rolled back must not leave a head that
    # was never stored.
    return session.get_nested_transaction() or session.get_transaction()


_HEAD_KEY = "trialdesk_audit_head"
_PENDING_ANCHOR = "trialdesk_audit_pending_anchor"
_RESTORED = "trialdesk_audit_restored"  # the restored backup's head seq
_REKEYED = "trialdesk_audit_rekeyed"  # the keys a rekey re-MACed the chain under

# Built once: every change of state appends here, and building SQLAlchemy statements
# per call was the largest single cost of a write request.
_head = cast(Table, AuditChainHead.__table__)
_records = cast(Table, AuditRecord.__table__)
_SELECT_HEAD = (
    select(_head.c.seq, _head.c.hash, _head.c.chain_id).where(_head.c.id == 1).with_for_update()
)
_UPDATE_HEAD = (
    update(_head)
    .where(_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"), chain_id=bindparam("chain_id"))
)
_INSERT_RECORD = insert(_records)
_SELECT_RECORD_AT = select(AuditRecord.at).where(AuditRecord.seq == bindparam("seq"))


# Anchoring, once a transaction that appended records has committed.


def _committed_head(session: Session) -> ChainHead | None:
    pending: list[tuple[object, ChainHead]] = session.info.pop(_PENDING_ANCHOR, [])
    return pending[-1][1] if pending else None


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING_ANCHOR)
    if not pending:
        return
    if previous.parent is None:
        session.info.pop(_PENDING_ANCHOR, None)
        session.info.pop(_RESTORED, None)
        session.info.pop(_REKEYED, None)
        return

    def within(transaction: Any) -> bool:
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    session.info[_PENDING_ANCHOR] = [(t, h) for t, h in pending if not within(t)]


@event.listens_for(Session, "after_commit")
def _anchor_committed(session: Session) -> None:
    head = _committed_head(session)
    restored = session.info.pop(_RESTORED, None)
    rekeyed: Keys | None = session.info.pop(_REKEYED, None)
    state_dir: Path | None = session.info.get(STATE_DIR_INFO)
    if head is None or head.chain_id is None or state_dir is None:
        return
    at = head.at.isoformat(timespec="microseconds")
    try:
        if rekeyed is not None:
            line = anchors.make_line(
                rekeyed, kind="rekey", chain=head.chain_id, seq=head.seq, hash=head.hash, at=at
            )
            anchors.replace(state_dir, head.chain_id, line)
            return
        kind = "restore" if restored is not None else "head"
        line = anchors.make_line(
            keys_of(session),
            kind=kind,
            chain=head.chain_id,
            seq=head.seq,
            hash=head.hash,
            at=at,
            base_seq=restored,
        )
        anchors.append(state_dir, line)
    except OSError:  # committed all the same: verify tolerates a missing newest anchor
        log.exception("the audit chain's head %s could not be anchored", head.seq)


def list_records(
    session: Session,
    *,
    study_id: int | None,
    after_seq: int,
    limit: int,
    entity: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    hidden_studies: Collection[int] = (),
) -> Sequence[AuditRecord]:
    """Records oldest first, after a cursor; those of one study when `study_id` is given,
    of one entity (`PS-PHL-001`, and its parts such as `PS-PHL-001:baseline`), of one
    action, or by one actor when those are; never those of `hidden_studies`."""
    query = select(AuditRecord).where(AuditRecord.seq > after_seq)
    if hidden_studies:
        query = query.where(
            or_(AuditRecord.study_id.is_(None), AuditRecord.study_id.not_in(hidden_studies))
        )
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
    """Re-MAC the whole trail (streamed) and check every link and the head."""
    keys = keys_of(session)
    head = session.get(AuditChainHead, 1)
    chain_id = head.chain_id if head is not None else None
    # yield_per as an execution option, so PostgreSQL streams (a server-side cursor)
    # rather than the driver fetching the whole trail first.
    rows = session.scalars(
        select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=1000)
    )
    records = (
        {
            **{name: getattr(r, name) for name in (*HASHED_FIELDS, "prev_hash", "hash")},
            "unreadable": r.unreadable,
        }
        for r in rows
    )
    if chain_id is None:
        first = next(records, None)
        return [ChainBreak(first["seq"], "the chain has no id")] if first else []
    # Any key of the ring: during a key rotation, records made after the switch are
    # MACed under the new key until the trail's step re-MACs the rest.
    breaks = check_chain(records, key=keys.derived_each(Use.audit_chain), chain_id=chain_id)
    last = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).first()
    if head is not None and last is not None and (head.seq, head.hash) != (last.seq, last.hash):
        breaks.append(ChainBreak(head.seq, "the chain head does not match the last record"))
    return breaks


MAX_SAME_PROBLEM = 5


def verify_anchors(session: Session, *, keys: Keys | None = None) -> list[ChainBreak]:
    """Check the trail against its anchors outside the database: every anchor (not
    given up by a later restore) must be a record of the chain, with the same hash.
    Finds newest records removed (an anchor beyond the head) and an older copy of the
    database put back. Streams the anchors file twice; looks records up 500 at a time."""
    keys = keys or keys_of(session)
    state_dir: Path | None = session.info.get(STATE_DIR_INFO)
    head = session.get(AuditChainHead, 1)
    if state_dir is None:
        return []
    if head is None or head.chain_id is None:
        # A trail emptied with its head: a database that holds studies has records.
        if session.execute(_text("SELECT 1 FROM studies LIMIT 1")).first() is None:
            return []
        return [ChainBreak(0, "the database holds studies but its trail has no head")]
    path = anchors.path_of(state_dir, head.chain_id)
    if head.seq == 0 and not path.exists():
        return []  # a new database: nothing recorded, nothing anchored
    if not path.exists():
        return [
            ChainBreak(
                head.seq,
                f"the trail has no anchors ({path} is missing): they were removed, or the "
                "database was moved without them (restore it with `trialdesk restore`)",
            )
        ]
    breaks: list[ChainBreak] = []
    markers: list[tuple[int, int]] = []  # (line, base seq) of each restore
    for number, item in anchors.read(state_dir, keys, head.chain_id):
        if isinstance(item, anchors.BadLine):
            breaks.append(ChainBreak(0, f"anchors file line {item.number}: {item.problem}"))
        elif item.kind == "restore" and item.base_seq is not None:
            markers.append((number, item.base_seq))
    counted = {"beyond": 0, "differs": 0}

    def check(batch: list[anchors.Anchor]) -> None:
        seqs = [a.seq for a in batch]
        stored = dict(
            session.execute(
                select(_records.c.seq, _records.c.hash).where(_records.c.seq.in_(seqs))
            ).all()
        )
        for anchor in batch:
            if anchor.seq > head.seq or anchor.seq not in stored:
                kind = "beyond"
                problem = (
                    f"anchored at {anchor.at}, but the trail ends at {head.seq}: its newest "
                    "records were removed, or an older copy of the database was put back"
                )
            elif stored[anchor.seq] != anchor.hash:
                kind = "differs"
                problem = (
                    f"differs from the record anchored at {anchor.at}: the trail was "
                    "rewritten, or an older copy of the database was put back"
                )
            else:
                continue
            counted[kind] += 1
            if counted[kind] <= MAX_SAME_PROBLEM:
                breaks.append(ChainBreak(anchor.seq, problem))

    batch: list[anchors.Anchor] = []
    for number, item in anchors.read(state_dir, keys, head.chain_id):
        if not isinstance(item, anchors.Anchor):
            continue
        if any(line > number and base < item.seq for line, base in markers):
            continue  # a later restore gave this part of the history up
        batch.append(item)
        if len(batch) == 500:
            check(batch)
            batch = []
    if batch:
        check(batch)
    for kind, count in counted.items():
        if count > MAX_SAME_PROBLEM:
            breaks.append(
                ChainBreak(
                    head.seq,
                    f"and {count - MAX_SAME_PROBLEM} more anchors "
                    f"{'beyond the head' if kind == 'beyond' else 'that differ'}",
                )
            )
    return breaks


@dataclass(frozen=True)
class HeadView:
    """The chain's head and its newest signed anchor (what an auditor keeps)."""

    seq: int
    hash: str
    at: datetime | None
    anchor: dict[str, Any] | None


def chain_head(session: Session) -> HeadView:
    """The head as stored, and its anchor outside the database; a committed head not
    anchored yet (the first read after an upgrade) is anchored now."""
    head = session.get_one(AuditChainHead, 1)
    at = session.scalar(_SELECT_RECORD_AT, {"seq": head.seq}) if head.seq else None
    state_dir: Path | None = session.info.get(STATE_DIR_INFO)
    anchor = None
    if head.chain_id is not None and state_dir is not None and at is not None:
        keys = keys_of(session)
        found = anchors.newest(state_dir, keys, head.chain_id)
        if found is not None and found.seq >= head.seq:
            anchor = found.line
        else:
            anchor = anchor_now(session, state_dir=state_dir)
    return HeadView(head.seq, head.hash, at, anchor)


def anchor_now(session: Session, *, state_dir: Path) -> dict[str, Any] | None:
    """Anchor the head as this session reads it (committed); the line written."""
    head = session.get_one(AuditChainHead, 1)
    at = session.scalar(_SELECT_RECORD_AT, {"seq": head.seq}) if head.seq else None
    if head.chain_id is None or at is None:
        return None
    line = anchors.make_line(
        keys_of(session),
        kind="head",
        chain=head.chain_id,
        seq=head.seq,
        hash=head.hash,
        at=at.isoformat(timespec="microseconds"),
    )
    try:
        anchors.append(state_dir, line)
    except OSError:
        log.exception("the audit chain's head %s could not be anchored", head.seq)
    return line


def record_restore(session: Session, *, reason: str, backup: Mapping[str, Any]) -> int:
    """Audit that a backup was put back (what, and why): the chain goes on from the
    backup's head, and the anchors written after the commit mark the break so that
    `verify` no longer expects the history given up. The new record's seq."""
    head = lock_chain_head(session)
    restored = {**backup, "head_seq": head.seq, "head_hash": head.hash}
    record(
        session,
        AuditAction.database_restored,
        actor=None,
        actor_label="trialdesk restore",
        entity_id="database",
        reason=reason,
        changes={"backup": (None, restored)},
    )
    session.info[_RESTORED] = head.seq
    return head.seq + 1


def _raw_records(session: Session, keys: Keys) -> Iterator[dict[str, Any]]:
    """Every record in seq order, opened with `keys`, read 1000 at a time by seq."""
    last = 0
    while True:
        rows = (
            session.execute(
                select(_records).where(_records.c.seq > last).order_by(_records.c.seq).limit(1000)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        for row in rows:
            record = dict(row)
            try:
                plain = keys.open(
                    Use.audit_record, bytes(record["sealed"]), context=seal_context(row["seq"])
                )
                record |= json.loads(plain)
            except (WrongKey, ValueError):
                record |= {"reason": None, "changes": {}, "unreadable": True}
            yield record
        last = rows[-1]["seq"]


def rekey(session: Session, *, old: Keys, new: Keys) -> int:
    """Re-MAC and re-seal every audit record under `new`, after verifying the chain and
    its anchors under `old` (AuditChainBroken if they do not hold); the count. Once
    committed, the anchors file starts anew with one `rekey` line under `new`."""
    lock_chain_head(session)  # appends wait until the trail is rewritten and committed
    head = session.execute(_SELECT_HEAD).one()
    seq_head, _, chain_id = head
    if chain_id is None:
        return 0
    # Servers that met the new key (the rotation switched the database to it before this
    # step) MAC and sign under it: a record or anchor is broken only if neither key
    # accepts it.
    # In a rotation's step the session's ring holds the old keys and the new one;
    # servers that met the new key (the rotation switched the database to it before this
    # step) MAC and sign under it, so a record or anchor verifies under any of them.
    opener = keys_of(session)
    macs = [*opener.derived_each(Use.audit_chain), new.derived(Use.audit_chain)]
    breaks = check_chain(_raw_records(session, opener), key=macs, chain_id=chain_id)
    breaks += verify_anchors(session, keys=opener)
    if breaks:
        raise AuditChainBroken(
            f"the audit chain does not verify under the old key ({breaks[0].problem} at "
            f"{breaks[0].seq}); nothing was re-keyed"
        )
    prev_hash, count, at = GENESIS_HASH, 0, None
    key = new.derived(Use.audit_chain)
    with triggers_lifted(session, _records):  # a rekey is the one rewrite of the trail
        for rec in _raw_records(session, opener):  # reads ahead of the updates, by seq
            digest = record_mac(
                {n: rec[n] for n in HASHED_FIELDS}, prev_hash, key=key, chain_id=chain_id
            )
            sealed = new.seal(
                Use.audit_record,
                sealed_document(reason=rec["reason"], changes=rec["changes"]),
                context=seal_context(rec["seq"]),
            )
            session.execute(
                update(_records)
                .where(_records.c.seq == rec["seq"])
                .values(sealed=sealed, prev_hash=prev_hash, hash=digest)
            )
            prev_hash, count, at = digest, count + 1, rec["at"]
    session.execute(
        _UPDATE_HEAD, {"new_seq": seq_head, "new_hash": prev_hash, "chain_id": chain_id}
    )
    if at is not None:
        session.info[_PENDING_ANCHOR] = [
            (_transaction(session), ChainHead(seq_head, prev_hash, at, chain_id))
        ]
        session.info[_REKEYED] = new
    session.info.pop(_HEAD_KEY, None)
    return count


def resign_anchors(session: Session, *, keys: Keys) -> None:
    """Start the anchors file anew with one `rekey` line for the chain's head, signed
    under `keys`: what `rekey` does once it commits, for when that write failed."""
    head = session.get(AuditChainHead, 1)
    state_dir: Path | None = session.info.get(STATE_DIR_INFO)
    if head is None or head.chain_id is None or state_dir is None or head.seq == 0:
        return
    last = session.get(AuditRecord, head.seq)
    if last is None:
        return
    at = last.at.isoformat(timespec="microseconds")
    line = anchors.make_line(
        keys, kind="rekey", chain=head.chain_id, seq=head.seq, hash=head.hash, at=at
    )
    anchors.replace(state_dir, head.chain_id, line)
