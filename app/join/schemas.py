"""The applicants API's bodies and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.join.models import Applicant


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


class ApplicantRead(BaseModel):
    """A sign-up as its reviewers see it: why it is held, and how to reach the person."""

    id: int
    site: str
    state: str
    language: str
    hold_reasons: list[str]
    needs_call: bool
    quiz_attempts: int
    created_at: datetime
    participant: str | None
    name: str | None
    email: str | None
    phone: str | None


class ApplicantList(BaseModel):
    items: list[ApplicantRead]


class Verified(BaseModel):
    code: str
    verified_at: datetime


def applicant_read(applicant: Applicant, *, site: str, participant: str | None) -> ApplicantRead:
    return ApplicantRead(
        id=applicant.id,
        site=site,
        state=applicant.state,
        language=applicant.language,
        hold_reasons=[str(h) for h in applicant.hold_reasons or []],
        needs_call=applicant.needs_call,
        quiz_attempts=applicant.quiz_attempts,
        created_at=applicant.created_at,
        participant=participant,
        name=applicant.name,
        email=applicant.email,
        phone=applicant.phone,
    )
