"""Text-message API schemas: texting preferences, and texts participants sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.texting.models import SmsReply

Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class TextingUpdate(BaseModel):
    """How invitations and reminders reach the participant (SPEC 11)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms", "both"]
    sms_consent: bool = Field(
        description="the participant agreed to receive texts (recorded with the time and "
        "your name; required before any text)"
    )
    timezone: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="IANA time zone for quiet hours; none: the study's"
    )


class TextingRead(BaseModel):
    code: str
    channel: str
    sms_consent: bool
    sms_consent_at: datetime | None
    sms_stopped_at: datetime | None
    timezone: str | None


class ReplyHandle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note


class ReplyRead(BaseModel):
    id: int
    participant: str | None = Field(description="the participant's code; null: unknown number")
    from_number: str | None = Field(
        default=None,
        description="an unknown sender's number, as the provider gave it (admins only)",
    )
    kind: str = Field(description="reply, help, stop or start")
    body: str
    received_at: datetime
    respond_by: datetime
    handled_at: datetime | None
    handled_note: str | None


class ReplyList(BaseModel):
    items: list[ReplyRead]
    next: str | None


class DeliveryRecorded(BaseModel):
    recorded: bool


def reply_read(reply: SmsReply, *, from_number: str | None = None) -> ReplyRead:
    return ReplyRead(
        id=reply.id,
        participant=reply.participant_code,
        from_number=from_number,
        kind=reply.kind,
        body=reply.body,
        received_at=reply.received_at,
        respond_by=reply.respond_by,
        handled_at=reply.handled_at,
        handled_note=reply.handled_note,
    )
