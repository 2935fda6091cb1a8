"""Which server key this database's secrets are sealed with: checked at every start, so
a wrong or missing key is a clear error, never a silent new randomization sequence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.config import ConfigurationError
from app.db.base import Base, utcnow
from app.keys import Keys

KEYS_INFO = "trialdesk_keys"


class ServerKey(Base):
    """One row: the fingerprint of the server key, recorded when first used."""

    __tablename__ = "server_key"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime]


def keys_of(session: Session) -> Keys:
    """The keys of the database this session works on, to open sealed values."""
    keys: Keys = session.info[KEYS_INFO]
    return keys


def sealing_keys_of(session: Session) -> Keys:
    """The keys to seal with: the server key's fingerprint is recorded (or checked)
    first, in the same transaction, so nothing is ever sealed with a key the database
    would not recognize at the next start."""
    keys = keys_of(session)
    if not keys.checked:
        check_server_key(session, keys)
        keys.checked = True
    return keys


def check_server_key(session: Session, keys: Keys) -> None:
    """Record the key's fingerprint on first use; refuse another key afterwards.

    Does nothing on a database that has not been migrated yet (`/readyz` says so).
    """
    if not inspect(session.connection()).has_table(ServerKey.__tablename__):
        return
    recorded = session.get(ServerKey, 1)
    if recorded is None:
        try:
            with session.begin_nested():
                session.add(ServerKey(id=1, fingerprint=keys.fingerprint, recorded_at=utcnow()))
        except IntegrityError:  # another process recorded it first: check theirs
            recorded = session.get(ServerKey, 1)
    if recorded is not None and recorded.fingerprint != keys.fingerprint:
        raise ConfigurationError(
            "the server key (TRIALDESK_SECRET_KEY, or the key file beside a SQLite database) "
            "is not the one this database's secrets were sealed with; start with that key"
        )
