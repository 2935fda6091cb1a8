"""Protocol deviation API schemas: what staff send, and what readers of safety records see.

A deviation names no arm: its fields are the same for every role that reads it (a
proposal about a survey only some arms have is not made where a blind role could read
it: see `deviations.propose_deviations`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

from app.safety.deviation_rules import DeviationCategory, DeviationState, DeviationVersionKind

MAX_TEXT = 4000

LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT)
]


def _iso_date(value: object) -> object:
    """A calendar date only as `YYYY-MM-DD` (not a number of seconds, not a date-time)."""
    if value is not None and not (isinstance(value, str) and len(value) == 10):
        raise ValueError("give the date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class DeviationCreate(BaseModel):
    """A deviation recorded by staff (confirmed at once)."""

    model_config = ConfigDict(extra="forbid")

    category: DeviationCategory
    occurred_on: IsoDate = Field(
        description="the day it happened, in the study's time zone: not in the future, not "
        "before the participant was screened"
    )
    description: LongText
    important: StrictBool = Field(
        description="an important deviation (may affect the participant's rights, safety or "
        "well-being, or the reliability of the data)"
    )
    corrective_action: LongText | None = None


class VersionKindIn(StrEnum):
    """The versions staff add: a follow-up (of a confirmed deviation), or the decision
    about a proposal."""

    follow_up = "follow_up"
    confirmation = "confirmation"
    dismissal = "dismissal"


class DeviationVersionCreate(BaseModel):
    """The next version: what changes (fields not given stay as they were) and a note.
    A dismissal changes no field and needs a note (why it was no deviation)."""

    model_config = ConfigDict(extra="forbid")

    kind: VersionKindIn = VersionKindIn.follow_up
    category: DeviationCategory | None = None
    occurred_on: IsoDate | None = None
    description: LongText | None = None
    important: StrictBool | None = None
    corrective_action: LongText | None = None
    note: LongText | None = None

    def changed_fields(self) -> dict[str, object]:
        """The deviation's fields this version gives, as stored (dates as ISO strings)."""
        given = {
            "category": self.category.value if self.category else None,
            "occurred_on": self.occurred_on.isoformat() if self.occurred_on else None,
            "description": self.description,
            "important": self.important,
            "corrective_action": self.corrective_action,
        }
        return {name: value for name, value in given.items() if value is not None}


class DeviationVersionRead(BaseModel):
    number: int
    kind: DeviationVersionKind
    fields: dict[str, object] = Field(description="what this version says (only what it gives)")
    note: str | None
    recorded_at: datetime
    recorded_by: str = Field(description="the staff member's email, or `system` for a proposal")


class DeviationSummary(BaseModel):
    id: int
    number: str = Field(description="PD-n, numbered within the study")
    participant: str
    site: str
    state: DeviationState
    category: DeviationCategory
    occurred_on: date
    description: str
    important: bool = Field(
        description="an important deviation (a proposal: false until a coordinator says otherwise)"
    )
    corrective_action: str | None
    proposed: bool = Field(description="found by the system rather than recorded by staff")
    created_at: datetime
    version_count: int


class DeviationRead(DeviationSummary):
    versions: list[DeviationVersionRead] = Field(description="every version, oldest first")


class DeviationList(BaseModel):
    items: list[DeviationSummary]
    next: str | None


class ProposalsMade(BaseModel):
    proposed: int = Field(description="how many new proposals were made at your sites")
