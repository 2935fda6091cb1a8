"""Participants (research data) and their contact details (kept apart)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base
from app.db.sealed import KEYED_HASH, SealedText
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
    # The pseudonym is not stored (beside the code it would give away): exports compute it
    # from the study's blinding key. They are ordered by this keyed hash of the code
    # (studies.pseudonyms.export_order), so a row's place tells nothing of when or where
    # someone enrolled, and is the same in every export.
    export_order: Mapped[str] = mapped_column(String(64), index=True)
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
    withdrawal_reason: Mapped[str | None] = mapped_column(
        SealedText("participants.withdrawal_reason")
    )
    # Status before withdrawal, so reports can tell withdrawn-after-randomization apart.
    withdrawn_from: Mapped[str | None] = mapped_column(String(16))
    # What the person stopped (SPEC 8: the intervention only, follow-up, use of their
    # data, lost to follow-up, died), the date they left and a coded reason.
    withdrawal_kind: Mapped[str | None] = mapped_column(String(24))
    withdrawn_on: Mapped[date | None]
    withdrawal_category: Mapped[str | None] = mapped_column(String(32))
    # The day the intervention stopped: kept when the person later leaves altogether
    # (withdrawn_on then moves to that later date).
    intervention_stopped_on: Mapped[date | None]
    # Null for a person who signed up through the public screening link (SPEC 10).
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # How the person came: `staff` (enrolled by a coordinator) or `join` (signed up and
    # consented online); the language of their pages and messages (a study language).
    source: Mapped[str] = mapped_column(String(8), default="staff", server_default="staff")
    language: Mapped[str | None] = mapped_column(String(8))
    # A self-reported diagnosis waits for a coordinator's check before randomization
    # (the study's `join.verify_before_randomization`).
    needs_verification: Mapped[bool] = mapped_column(default=False, server_default=false())
    verified_at: Mapped[datetime | None]
    verified_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Failed a re-consent quiz twice: a coordinator calls to go over the consent, then
    # marks the call done (a sign-up's flag is `applicants.needs_call`).
    needs_call: Mapped[bool] = mapped_column(default=False, server_default=false())
    # SPEC 11, text messages: how invitations and reminders reach the person (`email`,
    # `sms` or `both`); texts only once their consent to texting is recorded (when, and by
    # whom: none when they gave it on the public link) and until they send STOP.
    channel: Mapped[str] = mapped_column(String(8), default="email", server_default="email")
    sms_consent_at: Mapped[datetime | None]
    sms_consent_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sms_stopped_at: Mapped[datetime | None]
    # Their IANA time zone, for quiet hours (none: the study's).
    timezone: Mapped[str | None] = mapped_column(String(64))

    @property
    def was_randomized(self) -> bool:
        """Randomized, now or before a withdrawal (intention to treat keeps the arm)."""
        return was_randomized(self.status, self.withdrawn_from)

    site: Mapped[Site] = relationship(lazy="joined")
    contact: Mapped[Contact | None] = relationship(back_populates="participant")


class Contact(Base):
    """Identifying details: shown to that site's coordinators and admins, never exported.
    Sealed at rest; email and phone have keyed hashes beside them for exact look-ups."""

    __tablename__ = "contacts"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(SealedText("contacts.name"))
    # `phone` is kept in E.164 (`+12155550123`, parsed by `participants.phones`).
    email: Mapped[str | None] = mapped_column(SealedText("contacts.email"))
    phone: Mapped[str | None] = mapped_column(SealedText("contacts.phone"))
    email_index: Mapped[str | None] = mapped_column(
        String(64), index=True, info={KEYED_HASH: ("email", "email")}
    )
    phone_index: Mapped[str | None] = mapped_column(
        String(64), index=True, info={KEYED_HASH: ("phone", "phone")}
    )

    participant: Mapped[Participant] = relationship(back_populates="contact")


class ScreeningNumber(Base):
    """The last number given to an ineligible screening at a site. Screenings that do
    not enroll take codes from their own series (`PS-PHL-S0001`), so that enrolled
    participants' codes run without gaps; one row per site, incremented in place
    (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), so two screenings at once
    never get the same number."""

    __tablename__ = "site_screening_numbers"

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    last_number: Mapped[int]
