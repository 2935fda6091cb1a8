"""Participant API schemas: what a coordinator sends, and what each role sees.

Answers that can carry an arm come in two schemas: the blinded one has no `arm` field
at all; the `...Unblinded` one adds `arm` and `arm_label`. The builders below take the
arm only as a `ShownArm`, which the services make only when `randomization.blinding`
lets the caller see it: without one, the blinded schema is the only possible answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, StringConstraints

from app.participants.leaving import LeavingCategory, LeavingKind
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Key = Annotated[str, Field(min_length=1, max_length=64)]


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=64)]
    obtained_on: date | None = Field(
        default=None, description="the day consent was taken; default today (study's zone)"
    )


class ContactDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Annotated[EmailStr, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=64)] | None = None


class ParticipantCreate(BaseModel):
    """A screening. Consent, strata and contact are required when the person is eligible."""

    model_config = ConfigDict(extra="forbid")

    site: Annotated[str, Field(min_length=1, max_length=12, description="site code")]
    screening: dict[Key, bool] = Field(
        max_length=100, description="each eligibility criterion's answer"
    )
    consent: Consent | None = None
    strata: dict[Key, Key] = Field(
        default={}, max_length=10, description="each stratification factor's level"
    )
    contact: ContactDetails | None = None


def _iso_date(value: object) -> object:
    """A calendar date only as `YYYY-MM-DD` (not a number of seconds, not a date-time)."""
    if value is not None and not (isinstance(value, str) and len(value) == 10):
        raise ValueError("give the date as YYYY-MM-DD")
    return value


class Withdrawal(BaseModel):
    """Leaving the study. `{reason}` alone is the plain withdrawal from follow-up
    (surveys cancelled, messages stopped), as before kinds existed."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    kind: LeavingKind = Field(
        default=LeavingKind.follow_up,
        description="intervention: stopped the intervention, still followed up (stays "
        "randomized); follow_up: withdrew from follow-up; data: withdrew consent to the "
        "use of their data; lost: lost to follow-up; died",
    )
    withdrawn_on: Annotated[date, BeforeValidator(_iso_date)] | None = Field(
        default=None,
        description="the date they left (default: today in the study's time zone); not "
        "in the future, not before enrollment",
    )
    category: LeavingCategory = Field(default=LeavingCategory.other, description="coded reason")


class InvitationResent(BaseModel):
    timepoint: str
    queued: bool | None = Field(
        default=True,
        description="true: the email is in the outbox; null: not said (a role blind to "
        "arms asking about a survey only some arms have is answered alike for every arm)",
    )


class UnblindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


@dataclass(frozen=True)
class ShownArm:
    """An arm the caller may see (`code` None: not randomized yet)."""

    code: str | None
    label: str | None


class SurveyLine(BaseModel):
    timepoint: str
    status: str = Field(description="scheduled, open, completed, missed or cancelled")
    opens_on: date = Field(description="first day of the window, in the study's time zone")
    closes_on: date = Field(description="last day of the window, in the study's time zone")
    link: str | None = Field(default=None, description="the personal link, while open")


class ReissuedLink(BaseModel):
    link: str | None = Field(
        description="the new personal link; null for a role blind to arms when the "
        "survey's instruments differ by arm (the link is emailed to the participant)"
    )
    emailed: bool | None = Field(
        default=None,
        description="true: the new link is queued to the participant's email; false: it "
        "was not sent (no email address: the failed message is listed in `messages`; or "
        "the survey is not open yet: its invitation will carry the new link); null: not "
        "said (a role blind to arms asking about a survey only some arms have)",
    )


class ParticipantCreated(BaseModel):
    code: str
    status: ParticipantStatus
    site: str
    ineligible_reasons: list[str] | None = Field(
        default=None, description="the codes of the criteria not met"
    )
    ineligible_reason_labels: list[str] | None = Field(
        default=None,
        description="the same, as CONSORT shows them (a criterion's `fails_text`, else "
        "'Did not meet: <text>')",
    )


class ParticipantSummary(BaseModel):
    code: str
    site: str
    status: ParticipantStatus
    strata: dict[str, str] | None
    screened_at: datetime
    enrolled_at: datetime | None
    randomized_at: datetime | None
    withdrawn_at: datetime | None
    withdrawal_kind: LeavingKind | None = Field(
        default=None, description="how they left; `intervention` keeps them randomized"
    )
    withdrawn_on: date | None = Field(default=None, description="the date they left")
    withdrawal_category: LeavingCategory | None = None
    intervention_stopped_on: date | None = Field(
        default=None,
        description="the date they stopped the intervention, kept if they leave later",
    )


class ParticipantList(BaseModel):
    items: list[ParticipantSummary]
    next: str | None


class Texting(BaseModel):
    """How invitations and reminders reach the participant (SPEC 11)."""

    channel: str = Field(description="email, sms or both")
    sms_consent: bool = Field(description="consent to texting on record")
    sms_consent_at: datetime | None
    sms_stopped_at: datetime | None = Field(description="when they sent STOP (texts end)")
    timezone: str | None = Field(description="IANA zone for quiet hours; null: the study's")


class ParticipantRead(ParticipantSummary):
    """A participant's record, for roles that may not see arms."""

    screening: dict[str, bool]
    ineligible_reasons: list[str] | None
    ineligible_reason_labels: list[str] | None = None
    consent_version: str | None
    stratum: str | None
    withdrawal_reason: str | None
    contact: ContactDetails | None
    texting: Texting | None = None
    surveys: list[SurveyLine] = []


class ParticipantReadUnblinded(ParticipantRead):
    """A participant's record with the arm (null until randomized)."""

    arm: str | None
    arm_label: str | None


class RandomizeResult(BaseModel):
    code: str
    status: ParticipantStatus
    stratum: str
    randomized_at: datetime


class RandomizeResultUnblinded(RandomizeResult):
    arm: str
    arm_label: str


class UnblindResult(BaseModel):
    code: str
    arm: str
    arm_label: str


@dataclass(frozen=True)
class SurveyView:
    """One of a participant's surveys as staff see it (the token only while it is open)."""

    timepoint: str
    status: str
    opens_on: date
    closes_on: date
    token: str | None
    link_withheld: bool = False  # open, but its pages would show a blind role the arm


@dataclass(frozen=True)
class ParticipantDetail:
    """A participant, the contact details, the surveys, and the arm when the caller may
    see it."""

    participant: Participant
    contact: Contact | None
    arm: ShownArm | None
    surveys: list[SurveyView]
    ineligible_reason_labels: list[str] | None = None


def participant_summary(p: Participant) -> ParticipantSummary:
    return ParticipantSummary(
        code=p.code,
        site=p.site.code,
        status=p.status,
        strata=p.strata,
        screened_at=p.screened_at,
        enrolled_at=p.enrolled_at,
        randomized_at=p.randomized_at,
        withdrawn_at=p.withdrawn_at,
        withdrawal_kind=p.withdrawal_kind,
        withdrawn_on=p.withdrawn_on,
        intervention_stopped_on=p.intervention_stopped_on,
        withdrawal_category=p.withdrawal_category,
    )


def survey_link(base_url: str, token: str) -> str:
    """The personal link of a survey."""
    return f"{base_url.rstrip('/')}/s/{token}"


def participant_read(
    detail: ParticipantDetail, *, base_url: str
) -> ParticipantReadUnblinded | ParticipantRead:
    """The full record: the unblinded schema only when the arm was shown."""
    p, contact = detail.participant, detail.contact
    fields = participant_summary(p).model_dump() | {
        "screening": p.screening,
        "ineligible_reasons": p.ineligible_reasons,
        "ineligible_reason_labels": detail.ineligible_reason_labels,
        "consent_version": p.consent_version,
        "stratum": p.stratum,
        "withdrawal_reason": p.withdrawal_reason,
        "contact": (
            ContactDetails(name=contact.name, email=contact.email, phone=contact.phone)
            if contact
            else None
        ),
        "texting": Texting(
            channel=p.channel,
            sms_consent=p.sms_consent_at is not None,
            sms_consent_at=p.sms_consent_at,
            sms_stopped_at=p.sms_stopped_at,
            timezone=p.timezone,
        ),
        "surveys": [
            SurveyLine(
                timepoint=s.timepoint,
                status=s.status,
                opens_on=s.opens_on,
                closes_on=s.closes_on,
                link=survey_link(base_url, s.token) if s.token else None,
            )
            for s in detail.surveys
        ],
    }
    if detail.arm is None:
        return ParticipantRead(**fields)
    return ParticipantReadUnblinded(**fields, arm=detail.arm.code, arm_label=detail.arm.label)


def participant_created(p: Participant, *, labels: list[str] | None) -> ParticipantCreated:
    return ParticipantCreated(
        code=p.code,
        status=p.status,
        site=p.site.code,
        ineligible_reasons=p.ineligible_reasons,
        ineligible_reason_labels=labels,
    )


def randomize_result(
    p: Participant, arm: ShownArm | None
) -> RandomizeResultUnblinded | RandomizeResult:
    """The randomize answer: the unblinded schema only when the arm was shown."""
    assert p.stratum is not None and p.randomized_at is not None
    fields = {
        "code": p.code,
        "status": p.status,
        "stratum": p.stratum,
        "randomized_at": p.randomized_at,
    }
    if arm is None or arm.code is None or arm.label is None:
        return RandomizeResult(**fields)
    return RandomizeResultUnblinded(**fields, arm=arm.code, arm_label=arm.label)
