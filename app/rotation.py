"""`trialdesk keys rotate`: every sealed value re-sealed under a new server key, while
the servers keep serving.

1. The new key is added to the key file (the ring: old keys, then the new one). Running
   servers re-read the file when they meet a value sealed with a key they lack.
2. One short transaction makes the new key the one that seals: it re-seals the stable
   keys (survey and console links stay the same) and records the new fingerprint in
   `server_key`. Every transaction that seals reads that row first, under a shared lock
   on PostgreSQL (SQLite has one writer at a time), so nothing is sealed with the old key
   once this commits, and the switch waits for those that began before.
3. Each step re-seals its values, in a transaction of its own (`STEPS`), and the
   research tables a batch at a time, each batch read under a row lock so that a
   server's write waits for it and is never overwritten: values under the old key and
   the new one are both readable meanwhile. Then the keyed hashes that name engagement
   events' participants are rebuilt (`app.engagement.keyed`), a group at a time.
4. Once every step is done, the old keys leave the key file, and the rotation is
   audited (`keys.rotated`: the old and new fingerprints, how many values per step).

A rotation that stops half-way (a crash) is finished by running it again: it adds yet
another key and re-seals whatever is not under that one.

With TRIALDESK_SECRET_KEY (no key file), the new key is given (`--new-key-file`, or
TRIALDESK_NEW_SECRET_KEY) and the servers must be restarted with it afterwards.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import keyfile
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.service import AuditChainBroken
from app.auth import models as _auth_models  # noqa: F401
from app.config import ConfigurationError, Settings
from app.consent import models as _consent_models  # noqa: F401
from app.db.base import utcnow
from app.db.engine import Database
from app.db.sealed import attach_keys, reseal_batch, sealed_tables
from app.db.server_key import (
    KEYS_INFO,
    ServerKey,
    open_stable_keys,
    seal_stable_keys,
)
from app.engagement import keyed as engagement_keys
from app.engagement import models as _engagement_models  # noqa: F401
from app.idempotency import service as idempotency
from app.idempotency.models import IdempotencyKey
from app.incentives import models as _incentive_models  # noqa: F401
from app.join import models as _join_models  # noqa: F401
from app.keys import Keys, Use, WrongKey, fingerprint_of
from app.outbox import models as _outbox_models  # noqa: F401
from app.participants import models as _participant_models  # noqa: F401
from app.participants.models import Participant
from app.randomization import models as _randomization_models  # noqa: F401
from app.retention import models as _retention_models  # noqa: F401
from app.safety import models as _safety_models  # noqa: F401
from app.studies.models import BlindingKey, Study
from app.surveys import models as _survey_models  # noqa: F401
from app.texting import models as _texting_models  # noqa: F401

# The `_..._models` imports register the table of every sealed column, so that the
# research data's step (`reseal_batch`, which covers the tables registered) misses none.

logger = logging.getLogger(__name__)


class RotationError(RuntimeError):
    """The rotation cannot be made (or finished); the message says why."""


@dataclass(frozen=True)
class Rekeying:
    """What a step needs: the keys before the rotation (`old`, they open what was
    sealed) and after (`new`: the new key alone, with the same stable keys). The step's
    session opens with both and seals with the new one (`keys_of`/`sealing_keys_of`)."""

    old: Keys
    new: Keys

    def needs_resealing(self, sealed: bytes) -> bool:
        """Whether a value is sealed with another key than the new one."""
        return self.new.sealed_with(sealed) != self.new.key_id


Step = tuple[str, Callable[[Session, Rekeying], int]]


def _study_secrets(session: Session, rekeying: Rekeying) -> int:
    rows = session.execute(select(Study.id, Study.slug, Study.secret).order_by(Study.id)).all()
    done = 0
    for study_id, slug, sealed in rows:
        if rekeying.needs_resealing(bytes(sealed)):
            secret = rekeying.old.open(Use.study_secret, bytes(sealed), context=slug)
            resealed = rekeying.new.seal(Use.study_secret, secret, context=slug)
            session.execute(update(Study).where(Study.id == study_id).values(secret=resealed))
            done += 1
    return done


def _blinding_keys(session: Session, rekeying: Rekeying) -> int:
    rows = session.execute(
        select(BlindingKey.study_id, Study.slug, BlindingKey.sealed)
        .join(Study, Study.id == BlindingKey.study_id)
        .order_by(BlindingKey.study_id)
    ).all()
    done = 0
    for study_id, slug, sealed in rows:
        if rekeying.needs_resealing(bytes(sealed)):
            key = rekeying.old.open(Use.blinding_key, bytes(sealed), context=slug)
            resealed = rekeying.new.seal(Use.blinding_key, key, context=slug)
            session.execute(
                update(BlindingKey).where(BlindingKey.study_id == study_id).values(sealed=resealed)
            )
            done += 1
    return done


def _idempotency_answers(session: Session, rekeying: Rekeying) -> int:
    rows = session.scalars(
        select(IdempotencyKey)
        .where(IdempotencyKey.response_body.is_not(None))
        .order_by(IdempotencyKey.id)
    ).all()
    done = 0
    for row in rows:
        stored = row.response_body
        assert stored is not None
        sealed = base64.b64decode(stored)
        if not rekeying.needs_resealing(sealed):
            continue
        context = idempotency._context(row)
        body = rekeying.old.open(Use.idempotency, sealed, context=context)
        resealed = base64.b64encode(rekeying.new.seal(Use.idempotency, body, context=context))
        # Only if unchanged meanwhile (a pruned or completed row is left as it is).
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row.id, IdempotencyKey.response_body == stored)
            .values(response_body=resealed.decode())
            .execution_options(synchronize_session=False)
        )
        done += 1
    return done


# Every kind of sealed value, re-sealed in this order. A module that seals something
# adds its step here: `(name, function(session, rekeying) -> how many values)`.
def _research_data(db: Database, both: Keys) -> int:
    """Re-seal the research tables, a short transaction a batch (row-locked), so the
    servers' writes wait milliseconds, not the whole step, and none is overwritten."""
    done = 0
    for table, _, _ in sealed_tables():
        after: object = None
        while True:
            with db.begin() as session:
                session.info[KEYS_INFO] = both
                count, after = reseal_batch(session, table=table, after=after)
            done += count
            if after is None:
                break
    return done


def _engagement_keys(db: Database, both: Keys, rekeying: Rekeying) -> int:
    """Rebuild the keyed hashes that name engagement events' participants (no sealed
    value beside them for `reseal_batch` to rebuild them from), a short transaction per
    `REKEY_GROUP` participants."""
    with db.session(write=False) as session:
        studies = engagement_keys.studies_with_events(session)
        people = session.execute(
            select(Participant.study_id, Participant.id)
            .where(Participant.study_id.in_(studies))
            .order_by(Participant.id)
        ).all()
    done = 0
    group = engagement_keys.REKEY_GROUP
    for start in range(0, len(people), group):
        with db.begin() as session:
            session.info[KEYS_INFO] = both
            for study_id, pid in people[start : start + group]:
                done += engagement_keys.rekey(
                    session,
                    study_id=study_id,
                    participant_ids=[pid],
                    old=rekeying.old,
                    new=rekeying.new,
                )
    return done


STEPS: list[Step] = [
    ("study secrets", _study_secrets),
    ("blinding keys", _blinding_keys),
    ("idempotency answers", _idempotency_answers),
    (
        "audit trail",
        lambda session, rekeying: audit.rekey(session, old=rekeying.old, new=rekeying.new),
    ),
]


@dataclass
class Rotated:
    """What a rotation did."""

    old_fingerprint: str
    new_fingerprint: str
    key_file: Path | None
    resealed: dict[str, int] = field(default_factory=dict)


def rotate(settings: Settings, *, new_key: bytes | None = None) -> Rotated:
    """Re-seal everything under a new server key (`new_key`, or a new random one when
    the keys are in a key file); the servers may keep running meanwhile."""
    path = settings.key_file_path
    if path is None and new_key is None:
        raise RotationError(
            "the server key is TRIALDESK_SECRET_KEY: give the new one (--new-key-file, or "
            "TRIALDESK_NEW_SECRET_KEY), then restart the servers with it"
        )
    new_key = new_key if new_key is not None else keyfile.new_key()
    if len(new_key) < 32:
        raise RotationError("the new server key must have 32 characters or more")
    with _one_rotation_at_a_time(path):
        return _rotate(Settings(**settings.model_dump()), path, new_key)


def _rotate(settings: Settings, path: Path | None, new_key: bytes) -> Rotated:
    db = Database(settings)  # fresh settings: the key file is read under the lock
    try:
        db.check_server_key()  # the database's key is at hand; the stable keys are kept
        old = db.keys
        old_fingerprint = old.fingerprint
        if fingerprint_of(new_key) in old.fingerprints:
            raise RotationError("the new server key is one the database has already used")
        ring = settings.server_keys
        if path is not None:  # 1. the running servers may read the new key from now on
            keyfile.write(path, [*ring, new_key], note=_note(settings, "rotation under way"))
        both = old.with_keys(new_key)
        rekeying = Rekeying(old=old, new=Keys(new_key))
        rekeying.new.pin(old.stable())
        both.pin(old.stable())
        _switch(db, both, old)  # 2.
        attach_keys(db.engine, both)  # the sealed columns open with either, seal with the new
        rotated = Rotated(old_fingerprint, both.fingerprint, path)
        for name, step in STEPS:  # 3.
            with db.begin() as session:
                session.info[KEYS_INFO] = both
                rotated.resealed[name] = step(session, rekeying)
        rotated.resealed["research data"] = _research_data(db, both)
        rotated.resealed["engagement keys"] = _engagement_keys(db, both, rekeying)

        _ensure_anchors_resigned(db, rekeying.new)
        if path is not None:  # 4.
            keyfile.write(path, [new_key], note=_note(settings, "rotated"))
        with db.begin() as session:
            session.info[KEYS_INFO] = both
            audit.record(
                session,
                AuditAction.keys_rotated,
                actor=None,
                actor_label="trialdesk keys rotate",
                entity_id="server",
                changes={
                    "fingerprint": (old_fingerprint, rotated.new_fingerprint),
                    **{f"resealed {name}": (None, n) for name, n in rotated.resealed.items()},
                },
            )
        return rotated
    except AuditChainBroken as exc:
        raise RotationError(
            f"the audit trail does not verify, nothing was retired: {exc}"
        ) from None
    except WrongKey as exc:
        raise RotationError(
            f"a sealed value does not open with the database's keys: {exc}"
        ) from None
    except ConfigurationError as exc:
        raise RotationError(str(exc)) from None
    finally:
        db.dispose()


def _ensure_anchors_resigned(db: Database, new: Keys) -> None:
    """Before the old key leaves the key file: the audit trail's anchors must verify
    under the new key alone (its step re-signs them once its transaction commits; a
    state folder that could not be written leaves them signed under the old key, and
    retiring it then would leave `verify` failing for good)."""
    with db.session(write=False) as session:
        breaks = audit.verify_anchors(session, keys=new)
        if breaks:  # the step's write failed: once more, now
            try:
                audit.resign_anchors(session, keys=new)
            except OSError as exc:
                logger.warning("the audit anchors could not be re-signed: %s", exc)
            breaks = audit.verify_anchors(session, keys=new)
    if breaks:
        raise RotationError(
            "the audit trail's anchors are not re-signed under the new key "
            f"({breaks[0].problem}); the old key stays in the key file. Make the state "
            "folder writable, re-sign the anchors (docs/audit.md, 'Rotating the server "
            "key') and run `trialdesk keys rotate` again"
        )


def _switch(db: Database, both: Keys, old: Keys) -> None:
    """Make the new key the one that seals (step 2): the stable keys re-sealed under it,
    its fingerprint recorded, in one transaction that holds the row's lock."""
    with db.begin() as session:
        session.info[KEYS_INFO] = both
        row = session.scalars(
            select(ServerKey)
            .where(ServerKey.id == 1)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        if row is None:
            raise RotationError("the database has no server key recorded: nothing to rotate")
        if row.fingerprint != old.fingerprint:
            raise RotationError("the database's server key changed meanwhile: run it again")
        stable = open_stable_keys(old, row.stable_keys) if row.stable_keys else old.stable()
        row.stable_keys = seal_stable_keys(both, stable)
        row.fingerprint = both.fingerprint
        row.recorded_at = utcnow()


@contextmanager
def _one_rotation_at_a_time(path: Path | None) -> Iterator[None]:
    """Hold the key file's lock (a `.lock` file beside it) for the whole rotation: two
    rotations writing the ring at once could each drop the other's new key."""
    if path is None:
        yield
        return
    keyfile.make_private_folder(path.parent)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationError("another rotation of this key file is under way") from None
        yield
    finally:
        os.close(descriptor)  # lets go of the lock


def _note(settings: Settings, state: str) -> str:
    when = datetime.now(UTC).isoformat(timespec="seconds")
    return f"database: {settings.safe_database_name}\n{state} {when}"
