"""Participants (research data) and their contact details (kept apart)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base
from app.participants.lifecycle import ParticipantStatus, was_randomized
from app.studies.models import Site


class Participant(Base):
    """One screening: kept whether eligible or not, so CONSORT can count exclusions."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    # From the study's blinding key (studies.pseudonyms): exports show it, and are ordered
    # by it, so that a row's place tells nothing of when or where someone enrolled.
    pseudonym: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[ParticipantStatus] = mapped_column(String(16), index=True)
    screening: Mapped[dict[str, Any]]
    ineligible_reasons: Mapped[list[Any] | None]
    strata: Mapped[dict[str, Any] | None]
    stratum: Mapped[str | None] = mapped_column(String(500))
    consent_version: Mapped[str | None] = mapped_column(String(64))
    screened_at: Mapped[datetime]
    enrolled_at: Mapped[datetime | None]
    randomized_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawal_reason: Mapped[str | None] = mapped_column(String(2000))
    # Status before withdrawal, so reports can tell withdrawn-after-randomization apart.
    withdrawn_from: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))

    @property
    def was_randomized(self) -> bool:
        """Randomized, now or before a withdrawal (intention to treat keeps the arm)."""
        return was_randomized(self.status, self.withdrawn_from)

    site: Mapped[Site] = relationship(lazy="joined")
    contact: Mapped[Contact | None] = relationship(back_populates="participant")


class Contact(Base):
    """Identifying details: shown to that site's coordinators and admins, never exported."""

    __tablename__ = "contacts"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))

    participant: Mapped[Participant] = relationship(back_populates="contact")
