"""What the consent API takes and answers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ConsentState = Literal["signed", "countersigned", "requires_reconsent", "superseded"]


class ConsentRead(BaseModel):
    id: int
    version: str
    language: str
    signed_at: datetime
    method: Literal["electronic", "in_person"]
    document_sha256: str | None
    state: ConsentState
    obtained_on: date | None = None
    obtained_by: int | None = None
    countersigned_at: datetime | None = None
    countersigned_by: int | None = None
    pdf: str | None = Field(default=None, description="the signed copy's URL (electronic)")


class InPersonConsent(BaseModel):
    """A consent taken in person: the version, the day, and a note (kept sealed in the
    audit trail); the staff member recording it is the one who obtained it."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=64)]
    obtained_on: date
    note: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class AmendmentRead(BaseModel):
    version: str
    revision: int
    invited: int = Field(description="re-consent invitations queued")


class OutstandingLine(BaseModel):
    code: str
    site: str
    current_version: str | None
    invited_at: datetime | None
    invitation: str | None = Field(description="the email's status: pending, sent, failed")


class OutstandingList(BaseModel):
    version: str
    items: list[OutstandingLine]
