"""Participant API schemas: what a coordinator sends and sees."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.participants.models import ParticipantStatus

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=64)]


class ContactDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: EmailStr | None = None
    phone: Annotated[str, Field(max_length=64)] | None = None


class ParticipantCreate(BaseModel):
    """A screening. Consent, strata and contact are required when the person is eligible."""

    model_config = ConfigDict(extra="forbid")

    site: Annotated[str, Field(description="site code")]
    screening: dict[str, bool] = Field(description="each eligibility criterion's answer")
    consent: Consent | None = None
    strata: dict[str, str] = Field(default={}, description="each stratification factor's level")
    contact: ContactDetails | None = None


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class SurveyLine(BaseModel):
    timepoint: str
    status: str
    opens_on: date | None
    closes_on: date | None
    link: str | None = None


class ParticipantCreated(BaseModel):
    code: str
    status: ParticipantStatus
    site: str
    ineligible_reasons: list[str] | None = None


class ParticipantSummary(BaseModel):
    code: str
    site: str
    status: ParticipantStatus
    strata: dict[str, str] | None
    screened_at: datetime
    enrolled_at: datetime | None
    randomized_at: datetime | None
    withdrawn_at: datetime | None


class ParticipantRead(ParticipantSummary):
    screening: dict[str, bool]
    ineligible_reasons: list[str] | None
    consent_version: str | None
    stratum: str | None
    withdrawal_reason: str | None
    contact: ContactDetails | None
    arm: str | None = Field(default=None, description="only for roles that may see arms")
    arm_label: str | None = Field(default=None, description="only for roles that may see arms")
    surveys: list[SurveyLine] = []


class ParticipantList(BaseModel):
    items: list[ParticipantSummary]
    next: str | None
