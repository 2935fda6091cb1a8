"""Text messages participants send (SPEC 11): replies, STOP, HELP."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import KEYED_HASH, SealedText


class ReplyKind(StrEnum):
    stop = "stop"  # STOP, UNSUBSCRIBE, ...: no more texts to this number
    start = "start"  # START, UNSTOP: the provider lets texts through again
    help = "help"  # HELP, INFO: answered with who to contact
    reply = "reply"  # anything else: a coordinator reads it (it may carry a crisis)


class SmsReply(Base):
    """One text received from the provider's inbound webhook. Matched to a participant by
    the keyed hash of the sending number (none when unknown); the number and the words
    are sealed. Every one is answered at once (crisis line, "not watched around the
    clock") and waits on the worklist, at the top, until a coordinator handles it."""

    __tablename__ = "sms_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The provider's id of the message: a webhook delivered twice records it once.
    provider_ref: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    participant_code: Mapped[str | None] = mapped_column(String(32))
    from_number: Mapped[str] = mapped_column(SealedText("sms_replies.from_number"))
    from_index: Mapped[str | None] = mapped_column(
        String(64), index=True, info={KEYED_HASH: ("phone", "from_number")}
    )
    body: Mapped[str] = mapped_column(SealedText("sms_replies.body"))
    kind: Mapped[ReplyKind] = mapped_column(String(8))
    received_at: Mapped[datetime]
    respond_by: Mapped[datetime]  # received_at + the study's sms.respond_within_hours
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handled_note: Mapped[str | None] = mapped_column(SealedText("sms_replies.handled_note"))
