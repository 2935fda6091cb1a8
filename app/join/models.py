"""Applicants: people who screened themselves through the public link."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import KEYED_HASH, SealedText


class ApplicantState(StrEnum):
    contact = "contact"  # eligible: contact details next
    consent = "consent"  # reading, answering the quiz, signing
    held = "held"  # signed, waiting for a coordinator (duplicate, suspected bot, ...)
    enrolled = "enrolled"  # a participant now (`participant_id`)
    ineligible = "ineligible"  # did not meet a criterion: an ineligible participant row
    rejected = "rejected"  # a coordinator refused the sign-up (with a reason)


class Applicant(Base):
    """One sign-up through `/join/{slug}`. Reached by its own link (`token_hash` keeps
    only the hash). Contact details are sealed, with keyed hashes of email and phone
    beside them for the duplicate check; the network address only as a keyed hash."""

    __tablename__ = "applicants"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[ApplicantState] = mapped_column(String(16), index=True)
    language: Mapped[str] = mapped_column(String(8))
    screening: Mapped[dict[str, Any]]
    strata: Mapped[dict[str, Any] | None]
    ineligible_reasons: Mapped[list[Any] | None]
    name: Mapped[str | None] = mapped_column(SealedText("applicants.name"))
    email: Mapped[str | None] = mapped_column(SealedText("applicants.email"))
    phone: Mapped[str | None] = mapped_column(SealedText("applicants.phone"))
    date_of_birth: Mapped[str | None] = mapped_column(SealedText("applicants.date_of_birth"))
    email_index: Mapped[str | None] = mapped_column(
        String(64), index=True, info={KEYED_HASH: ("email", "email")}
    )
    phone_index: Mapped[str | None] = mapped_column(
        String(64), index=True, info={KEYED_HASH: ("phone", "phone")}
    )
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # Why the sign-up is held (codes: duplicate_email, duplicate_phone, honeypot,
    # too_fast, busy_address, busy_study); shown to coordinators, never to the applicant.
    hold_reasons: Mapped[list[Any] | None]
    quiz_attempts: Mapped[int] = mapped_column(default=0)
    needs_call: Mapped[bool] = mapped_column(default=False)  # failed the quiz twice
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    # The re-check at the first survey (`join.ask_date_of_birth`): `matched` or
    # `mismatched`, asked once (written by app.surveys.birth through a table clause).
    date_of_birth_check: Mapped[str | None] = mapped_column(String(16))
    date_of_birth_checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_reason: Mapped[str | None] = mapped_column(SealedText("applicants.decision_reason"))
