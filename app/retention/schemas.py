"""Contact log, locator, calls and missed-visit API schemas (SPEC 11; API.md "Added in
the second release"). Inputs forbid unknown fields and bound every text; nothing here
names an arm, so every role that reads it is answered alike whatever the arm."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, StringConstraints

from app.participants.phones import MAX_PHONE
from app.retention.models import ContactMethod, ContactOutcome
from app.retention.rules import MissedReason

MAX_NOTE = 2000
MAX_NEXT_STEP = 500
MAX_NAME = 200
MAX_RELATION = 100


def _iso_date(value: object) -> object:
    """A calendar date only as `YYYY-MM-DD` (not a number of seconds, not a date-time)."""
    if value is not None and not (isinstance(value, str) and len(value) == 10):
        raise ValueError("give the date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NOTE)]
NextStep = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NEXT_STEP)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)]
Relation = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_RELATION)
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_PHONE)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class ContactCorrection(BaseModel):
    """New contact details: only the fields given change (null clears an email or a
    phone; a name cannot be removed)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Annotated[EmailStr, Field(max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_PHONE)] | None = (
        Field(
            default=None, description="read as dialled in the study's `sms.region`; kept in E.164"
        )
    )


class ContactCorrected(BaseModel):
    """Which fields changed (never their values: nothing personal is kept for replays)."""

    participant: str
    changed: list[str]


class ContactCreate(BaseModel):
    """One attempt to reach the participant."""

    model_config = ConfigDict(extra="forbid")

    method: ContactMethod
    outcome: ContactOutcome
    note: Note | None = Field(default=None, description=f"up to {MAX_NOTE} characters; sealed")
    next_step: NextStep | None = Field(default=None, description="what to do next (sealed)")
    next_step_on: IsoDate | None = Field(
        default=None,
        description="when to try again, in the study's time zone: the participant is due "
        "for a call from that day (today or later, within a year)",
    )
    timepoint: Code | None = Field(default=None, description="the survey it was about")


class ContactRead(BaseModel):
    id: int
    participant: str
    method: ContactMethod
    outcome: ContactOutcome
    note: str | None
    next_step: str | None
    next_step_on: date | None
    timepoint: str | None
    made_at: datetime
    made_by: str = Field(description="the staff member's email")


class ContactList(BaseModel):
    items: list[ContactRead] = Field(description="newest first")
    next: str | None


class AlternateContactCreate(BaseModel):
    """Someone the participant allowed the team to ask after them: a phone, an email
    or both."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    relation: Relation = Field(description="e.g. mother, friend, case manager")
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_PHONE)] | None = (
        Field(default=None, description="read as dialled in the study's `sms.region`")
    )
    email: Annotated[EmailStr, Field(max_length=320)] | None = None
    permission_on: IsoDate = Field(
        description="the day the participant allowed it (required: without their "
        "permission no one else is recorded); not in the future"
    )


class AlternateContactRead(BaseModel):
    # Someone else's details: not kept for Idempotency-Key replays (a replay answers
    # them as null), so removing the contact or purging it at the lock leaves no copy.
    shown_once: ClassVar[tuple[str, ...]] = ("name", "relation", "phone", "email")

    id: int
    participant: str
    name: str | None = Field(description="null once purged at study close")
    relation: str | None
    phone: str | None = Field(description="E.164")
    email: str | None
    permission_on: date
    created_at: datetime
    created_by: str
    removed_at: datetime | None
    purged_at: datetime | None


class AlternateContactList(BaseModel):
    items: list[AlternateContactRead]
    next: str | None


class MissedReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: MissedReason
    note: Note | None = Field(default=None, description=f"up to {MAX_NOTE} characters; sealed")


class MissedReasonRead(BaseModel):
    participant: str
    timepoint: str
    status: str
    missed_reason: MissedReason
    missed_note: str | None
    missed_reason_by: str
    missed_reason_at: datetime


class CallReasonRead(BaseModel):
    code: str = Field(description="the call rule's code, or `next_step`")
    kind: str = Field(description="survey_overdue, messages_failed, no_contact or next_step")
    timepoint: str | None = Field(default=None, description="survey_overdue: the survey")
    count: int | None = Field(default=None, description="messages_failed: how many")
    since: date | None = Field(
        default=None,
        description="survey_overdue: the day the window opened; no_contact: the day last "
        "reached (or started); next_step: the day set",
    )


class LastAttempt(BaseModel):
    method: ContactMethod
    outcome: ContactOutcome
    made_at: datetime
    next_step_on: date | None


class CallRead(BaseModel):
    id: int = Field(description="the participant's row id (the list's cursor)")
    participant: str
    site: str
    reasons: list[CallReasonRead]
    last_attempt: LastAttempt | None


class CallList(BaseModel):
    items: list[CallRead] = Field(description="participants due for a call, in code order")
    next: str | None
