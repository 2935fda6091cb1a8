"""Messages to send, written in the same transaction as the change that calls for them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import SealedText


class MessageKind(StrEnum):
    invitation = "invitation"  # a survey's window opened
    reminder = "reminder"  # still not answered, on the study's reminder days
    alert = "alert"  # a submitted survey met a safety rule: to the site's coordinators
    sign_in = "sign_in"  # a one-time link to the staff console, to its user
    link_reissued = "link_reissued"  # a survey's new link, after staff replaced the old one
    # A serious adverse event was opened (or became serious): to the study's safety
    # contacts, with a link to the console only, never health details.
    safety_event = "safety_event"
    # SPEC 10: the signed consent's PDF copy, to the participant (subject: the consent);
    # an invitation to re-consent after an amendment (subject: the participant); the
    # link to go on after a coordinator accepted a held sign-up (subject: the applicant).
    consent_copy = "consent_copy"
    reconsent = "reconsent"
    applicant_accepted = "applicant_accepted"
    # SPEC 11: the automatic answer to a text a participant sent (subject: the reply).
    sms_auto_reply = "sms_auto_reply"


class Channel(StrEnum):
    email = "email"
    sms = "sms"


class MessageStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # tried MAX_ATTEMPTS times, or cannot be sent: shown to coordinators
    skipped = "skipped"  # no longer needed when its turn came (the survey was completed)


class OutboxMessage(Base):
    """One message. What it says is written when it is sent (from `subject_id`), so that
    no link, address or answer is ever stored here."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[MessageKind] = mapped_column(String(32))
    # One message per key, however many scheduler passes run at once.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    subject_id: Mapped[int]  # the survey instance or the alert the message is about
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    participant_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[MessageStatus] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]  # claimed by a sender until then
    # A mail server's answer can name the address: sealed.
    last_error: Mapped[str | None] = mapped_column(SealedText("outbox_messages.last_error"))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # SPEC 11: email or a text message; a text's id at the provider (for its delivery
    # callbacks) and the last delivery status it reported (`delivered`, `undelivered`).
    channel: Mapped[Channel] = mapped_column(String(8), default="email", server_default="email")
    provider_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivery_at: Mapped[datetime | None]
