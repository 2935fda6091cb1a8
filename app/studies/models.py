"""Studies (with their definition and secret) and their sites."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base
from app.studies.lifecycle import StudyStatus


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(2000))
    status: Mapped[StudyStatus] = mapped_column(String(16))
    # Loaded only when needed: parsed definitions are cached (studies.service), and
    # decoding the whole document on every request was a measurable cost.
    definition: Mapped[dict[str, Any]] = mapped_column(deferred=True)
    # Raised by each amendment (a new consent version, SPEC 10): parsed definitions are
    # cached by it. Nothing else of an active study's definition ever changes.
    revision: Mapped[int] = mapped_column(default=1, server_default="1")
    # 256 random bits behind the allocation sequence, sealed with the server key (see
    # studies.service.secret_of): never shown by the API before lock, never exported.
    secret: Mapped[bytes] = mapped_column(LargeBinary(128))
    commitment: Mapped[str | None] = mapped_column(String(64))
    code_prefix: Mapped[str] = mapped_column(String(6))
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    locked_at: Mapped[datetime | None]

    sites: Mapped[list[Site]] = relationship(back_populates="study", order_by="Site.id")


class BlindingKey(Base):
    """The study's blinding key: 256 random bits behind the pseudonyms and the order of
    the group codes of blinded exports and reports. Made with the study, sealed with the
    server key, kept apart from the randomization secret and never shown, not even at
    lock: revealing the secret must not unblind the statistician."""

    __tablename__ = "blinding_keys"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[datetime]


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    code: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    # Last participant number issued at this site; incremented under the row's lock.
    last_participant_number: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]

    study: Mapped[Study] = relationship(back_populates="sites")
