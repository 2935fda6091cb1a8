"""Whose an engagement event is, at rest (SPEC 6a): a keyed hash of the participant.

Engagement tells the arm (only one arm has a bulletin board), so a copy of the database
must not tell which participants use it: an event holds `participant_key`, the HMAC of
"engagement|{study_id}|{participant_id}" under the server's research index key (as
`app.db.sealed.keyed_hash` makes them), never the participant's id. Whoever has the key
computes the keys of a study's participants (a few hundred HMACs) and looks events up
by them.

The research index key changes with the server key: `trialdesk keys rotate` rebuilds
the keys (`rekey`, a short transaction per group of participants). Meanwhile, and
until a rotation that stopped half-way is run again, events may carry a key under any
key of the ring: readers match each participant's key under every one (`keys_by_owner`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.engagement.models import EngagementEvent
from app.keys import Keys, Use

KIND = "engagement"
REKEY_GROUP = 50  # participants whose events one transaction of a rotation rebuilds


def participant_key(index_key: bytes, study_id: int, participant_id: int) -> str:
    """The key an event of this participant carries, under one research index key."""
    message = f"{KIND}|{study_id}|{participant_id}".encode()
    return hmac.new(index_key, message, hashlib.sha256).hexdigest()


def current_key(keys: Keys, study_id: int, participant_id: int) -> str:
    """The key an event is written with now (the ring's current key)."""
    return participant_key(keys.derived(Use.research_index), study_id, participant_id)


def keys_by_owner(keys: Keys, study_id: int, participant_ids: Iterable[int]) -> dict[str, int]:
    """Every key an event of these participants may carry (one per key of the ring) →
    the participant."""
    index_keys = keys.derived_each(Use.research_index)
    return {
        participant_key(index_key, study_id, pid): pid
        for pid in participant_ids
        for index_key in index_keys
    }


def studies_with_events(session: Session) -> list[int]:
    query = select(EngagementEvent.study_id).distinct().order_by(EngagementEvent.study_id)
    return list(session.scalars(query))


def rekey(
    session: Session, *, study_id: int, participant_ids: Iterable[int], old: Keys, new: Keys
) -> int:
    """Give these participants' events their key under `new`, whatever key of `old`'s
    ring they carry; how many events changed."""
    changed = 0
    for pid in participant_ids:
        target = current_key(new, study_id, pid)
        before = [k for k in keys_by_owner(old, study_id, [pid]) if k != target]
        result = session.execute(
            update(EngagementEvent)
            .where(
                EngagementEvent.study_id == study_id,
                EngagementEvent.participant_key.in_(before),
            )
            .values(participant_key=target)
            .execution_options(synchronize_session=False)
        )
        changed += result.rowcount  # type: ignore[attr-defined]
    return changed
