"""Which server key this database's secrets are sealed with: checked at every start, so
a wrong or missing key is a clear error, never a silent new randomization sequence.

The row also keeps the stable keys (`app.keys.STABLE`: survey links, console links and
forms), sealed with the server key, so that a rotation keeps links already handed out.
After a rotation (`app.rotation`) the row names the new key: every transaction that
seals reads it first (sharing its lock on PostgreSQL, so a rotation waits for those
transactions and they for it) and seals with the key it names, re-reading the key file
if this process does not hold that key yet.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from sqlalchemy import LargeBinary, String, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import keyfile
from app.config import ConfigurationError, Settings
from app.db.base import Base, utcnow
from app.keys import STABLE, Keys, Use

KEYS_INFO = "trialdesk_keys"
_log = logging.getLogger("trialdesk.keys")
_CHECKED_IN = "trialdesk_keys_checked_in"  # the transaction that checked under the lock
_SEEN_IN = "trialdesk_keys_seen_in"  # the transaction that checked (maybe without it)
STABLE_CONTEXT = "server"


class ServerKey(Base):
    """One row: the fingerprint of the server key, recorded when first used."""

    __tablename__ = "server_key"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime]
    # The stable keys, sealed (Use.stable_keys); None until the first start that saw them.
    stable_keys: Mapped[bytes | None] = mapped_column(LargeBinary)


def keys_for(settings: Settings) -> Keys:
    """The keys of these settings: a ring that re-reads the key file when it meets a
    value sealed with a key it does not hold (another process rotated)."""
    ring = settings.server_keys
    path = settings.key_file_path

    def reload() -> list[bytes]:
        try:
            keys = keyfile.read(path) if path is not None else None
        except keyfile.KeyFileError:
            _log.exception("the key file cannot be read again; going on with the keys held")
            return ring
        return keys if keys else ring

    return Keys(ring[-1], older=ring[:-1], reload=reload if path is not None else None)


def keys_of(session: Session) -> Keys:
    """The keys of the database this session works on, to open sealed values."""
    keys: Keys = session.info[KEYS_INFO]
    return keys


def sealing_keys_of(session: Session) -> Keys:
    """The keys to seal with: the server key's fingerprint is recorded (or checked)
    first, in the same transaction, so nothing is ever sealed with a key the database
    would not recognize at the next start, nor with a key a rotation has retired."""
    keys = keys_of(session)
    transaction = session.get_transaction()
    if transaction is None or session.info.get(_CHECKED_IN) is not transaction:
        check_server_key(session, keys, lock=True)
        keys.checked = True
        session.info[_CHECKED_IN] = session.info[_SEEN_IN] = session.get_transaction()
    return keys


def current_keys_of(session: Session) -> Keys:
    """The keys, with the key the database names as current (checked once per
    transaction, without a lock): for keyed hashes that must match what was written
    after a rotation by another process."""
    keys = keys_of(session)
    transaction = session.get_transaction()
    if transaction is None or session.info.get(_SEEN_IN) is not transaction:
        check_server_key(session, keys)
        keys.checked = True
        session.info[_SEEN_IN] = session.get_transaction()
    return keys


def check_server_key(session: Session, keys: Keys, *, lock: bool = False) -> None:
    """Record the key's fingerprint on first use; refuse a key the database was not
    sealed with; seal with the key the database names. `lock` shares the row's lock
    until the transaction ends (PostgreSQL), so a rotation cannot pass in between.

    Does nothing on a database that has not been migrated yet (`/readyz` says so).
    """
    if not keys.checked and not inspect(session.connection()).has_table(ServerKey.__tablename__):
        return
    recorded = _row(session, lock=lock)
    if recorded is None:
        try:
            with session.begin_nested():
                session.add(ServerKey(id=1, fingerprint=keys.fingerprint, recorded_at=utcnow()))
        except IntegrityError:  # another process recorded it first: check theirs
            pass
        recorded = _row(session, lock=lock)
    if recorded is None:
        return
    if not keys.use_current(recorded.fingerprint):
        raise ConfigurationError(
            "the server key (TRIALDESK_SECRET_KEY, or the key file: see `trialdesk keys "
            "where`) is not the one this database's secrets were sealed with; start with "
            "that key (`trialdesk keys import` puts back an escrowed one)"
        )
    if recorded.stable_keys is not None and not keys.pinned:
        keys.pin(open_stable_keys(keys, recorded.stable_keys))


def keep_stable_keys(session: Session, keys: Keys) -> None:
    """Store the stable keys in the database if they are not yet (at start, before any
    rotation: they are then what the current key derives)."""
    if not inspect(session.connection()).has_table(ServerKey.__tablename__):
        return
    recorded = _row(session, lock=False)
    if recorded is not None and recorded.stable_keys is None:
        recorded.stable_keys = seal_stable_keys(keys, keys.stable())
        session.flush()
        keys.pin(keys.stable())


def seal_stable_keys(keys: Keys, stable: dict[Use, bytes]) -> bytes:
    """The stable keys, sealed with `keys`' current key."""
    document = json.dumps({use.value: key.hex() for use, key in stable.items()})
    return keys.seal(Use.stable_keys, document.encode(), context=STABLE_CONTEXT)


def open_stable_keys(keys: Keys, sealed: bytes) -> dict[Use, bytes]:
    """The stable keys kept in the database."""
    document = json.loads(keys.open(Use.stable_keys, sealed, context=STABLE_CONTEXT))
    return {use: bytes.fromhex(document[use.value]) for use in STABLE if use.value in document}


def _row(session: Session, *, lock: bool) -> ServerKey | None:
    query = select(ServerKey).where(ServerKey.id == 1).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update(read=True)
    return session.scalars(query).one_or_none()
