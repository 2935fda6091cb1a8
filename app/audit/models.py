"""The audit trail: append-only, each record carrying the keyed hash of the one before.

A record's reason and changes (survey answers, contact details, notes) are sealed at
rest (`sealed`, AES-GCM under a key derived from the server key); loading a record
opens them, so `reason` and `changes` read as plain values.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, event
from sqlalchemy.orm import Mapped, mapped_column

from app.audit.chain import seal_context
from app.db.base import Base
from app.db.server_key import keys_of
from app.keys import Use, WrongKey

_PLAIN = "_trialdesk_plain"


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_study_id_entity_id", "study_id", "entity_id"),)

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), index=True)
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(200))
    # `{"changes": ..., "reason": ...}` as canonical JSON, sealed under `Use.audit_record`
    # and bound to the seq (`chain.seal_context`).
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # The id of the request that made the change (`X-Request-ID`), also in its log lines.
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    @property
    def reason(self) -> str | None:
        """The plain reason (opened when the record was loaded)."""
        reason: str | None = self._plain()["reason"]
        return reason

    @property
    def changes(self) -> dict[str, Any]:
        """The plain changes, `{field: {"old": ..., "new": ...}}`."""
        changes: dict[str, Any] = self._plain()["changes"]
        return changes

    @property
    def unreadable(self) -> bool:
        """Whether the sealed part did not open (altered, or another key): `verify` says so."""
        return bool(self._plain().get("unreadable"))

    def _plain(self) -> dict[str, Any]:
        plain: dict[str, Any] | None = self.__dict__.get(_PLAIN)
        if plain is None:
            raise RuntimeError("an audit record's sealed part is opened when it is loaded")
        return plain


@event.listens_for(AuditRecord, "load")
def _open_on_load(target: AuditRecord, context: Any) -> None:
    keys = keys_of(context.session)
    try:
        opened = keys.open(Use.audit_record, target.sealed, context=seal_context(target.seq))
        plain = json.loads(opened)
    except (WrongKey, ValueError):
        plain = {"changes": {}, "reason": None, "unreadable": True}
    target.__dict__[_PLAIN] = plain


@event.listens_for(AuditRecord, "refresh")
def _open_on_refresh(target: AuditRecord, context: Any, _attrs: Any) -> None:
    _open_on_load(target, context)


class AuditChainHead(Base):
    """One row: the last record's seq and hash, and the chain's id (made with the first
    record; it names the chain's anchors outside the database and is covered by every
    record's hash). Locked by each append, so the chain never forks when several
    processes write at once."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))
    chain_id: Mapped[str | None] = mapped_column(String(32))
