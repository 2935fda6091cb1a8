"""The contact log and the locator (SPEC 11): every attempt to reach a participant, and
the other people they allowed the team to ask after them. Sealed at rest."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, String, or_, true
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import KEYED_HASH, SealedText, keyed_hash
from app.keys import Keys


class ContactMethod(StrEnum):
    phone = "phone"
    text = "text"
    email = "email"
    letter = "letter"
    in_person = "in_person"


class ContactOutcome(StrEnum):
    reached = "reached"
    no_answer = "no_answer"
    left_message = "left_message"
    wrong_number = "wrong_number"
    declined = "declined"
    other = "other"


class ContactAttempt(Base):
    """One attempt to reach a participant: how, with what outcome, a note, a next step."""

    __tablename__ = "contact_attempts"
    __table_args__ = (Index("ix_contact_attempts_participant", "participant_id", "made_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    participant_code: Mapped[str] = mapped_column(String(32))
    method: Mapped[ContactMethod] = mapped_column(String(16))
    outcome: Mapped[ContactOutcome] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(SealedText("contact_attempts.note"))
    next_step: Mapped[str | None] = mapped_column(SealedText("contact_attempts.next_step"))
    next_step_on: Mapped[date | None]  # when to try again: on the worklist from that day
    # The survey it was about: sealed, as a timepoint only some arms have tells the arm.
    timepoint: Mapped[str | None] = mapped_column(SealedText("contact_attempts.timepoint"))
    # Its keyed hash, so a blind role's queries can leave out attempts about a timepoint
    # only some arms have without a copy of the database naming that timepoint.
    timepoint_index: Mapped[str | None] = mapped_column(
        String(64), info={KEYED_HASH: ("timepoint", "timepoint")}
    )
    made_at: Mapped[datetime]
    made_by: Mapped[int] = mapped_column(ForeignKey("users.id"))


class AlternateContact(Base):
    """Someone else who may be asked where the participant is, with their permission.
    Other people's data: purged (sealed values cleared, the row kept) at study close."""

    __tablename__ = "alternate_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    name: Mapped[str | None] = mapped_column(SealedText("alternate_contacts.name"))
    relation: Mapped[str | None] = mapped_column(SealedText("alternate_contacts.relation"))
    phone: Mapped[str | None] = mapped_column(SealedText("alternate_contacts.phone"))
    email: Mapped[str | None] = mapped_column(SealedText("alternate_contacts.email"))
    permission_on: Mapped[date]  # the day the participant allowed it
    created_at: Mapped[datetime]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    removed_at: Mapped[datetime | None]  # taken off by staff (the participant asked)
    purged_at: Mapped[datetime | None]


def shown_attempts(hidden: frozenset[str], attempt: Any = ContactAttempt) -> ColumnElement[bool]:
    """The attempts (of `attempt`, the table or an alias of it) a role with these hidden
    timepoints is told of: not one about a survey only some arms have. Someone who sees
    arms may log one (a blind role may not), and only for a participant of those arms: for
    a blind role it does not exist, in the log as in who is due for a call (SPEC 6b).
    `hidden` holds the keyed hashes of those timepoints (`hidden_indexes`)."""
    if not hidden:
        return true()
    return or_(attempt.timepoint_index.is_(None), attempt.timepoint_index.not_in(hidden))


def hidden_indexes(keys: Keys, hidden: frozenset[str]) -> frozenset[str]:
    """The keyed hashes of these timepoints, as `timepoint_index` holds them."""
    return frozenset(h for t in hidden if (h := keyed_hash(keys, "timepoint", t)) is not None)
