"""A participant's survey as staff read, enter and correct it (`surveys.staff`): the
request bodies and the answer. Instruments only some arms answer are left out for
roles blind to arms (the service chose them)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from app.surveys.staff import StaffSurvey

Answer = Any  # a JSON value; checked against its item by surveys.scoring
AnswersIn = Annotated[dict[Annotated[str, Field(max_length=64)], Answer], Field(max_length=1000)]


def _iso_date(value: Any) -> Any:
    """Only a `YYYY-MM-DD` string is a date here (not a number of seconds)."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value
    raise ValueError("give the date as YYYY-MM-DD")


InterviewDate = Annotated[
    date, BeforeValidator(_iso_date), Field(description="the interview's date, YYYY-MM-DD")
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


def _visible(reason: str) -> str:
    """A reason a reader can see: letters, not only spaces, marks or invisible characters."""
    if not any(unicodedata.category(c)[0] == "L" for c in reason):
        raise ValueError("say why the answer is corrected, in words")
    return reason


class StaffAnswersIn(BaseModel):
    """Answers a staff member entered so far (null takes an answer back)."""

    model_config = ConfigDict(extra="forbid")

    answers: AnswersIn = {}
    interviewed_on: InterviewDate | None = None
    assessor_blind: StrictBool | None = Field(
        default=None, description="whether the interviewer was blind to the arm"
    )


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: Annotated[str, Field(min_length=1, max_length=64)]
    value: Answer = Field(description="the right answer; null: no answer")
    reason: Annotated[Reason, AfterValidator(_visible)]


class CorrectionRead(BaseModel):
    item: str
    old: Answer
    new: Answer
    reason: str
    by: str | None = Field(description="the staff member's email")
    at: datetime


class StaffSurveyRead(BaseModel):
    """A participant's survey as staff read it (instruments only some arms have are left
    out for roles blind to arms)."""

    timepoint: str
    status: str = Field(description="scheduled, open, completed, missed or cancelled")
    opens_on: date
    closes_on: date
    mode: str = Field(description="self: through the link; staff: entered in an interview")
    entered_by: str | None = Field(description="the staff member who entered it (email)")
    interviewed_on: date | None
    assessor_blind: bool | None
    instruments: list[str] = Field(description="the codes of its instruments")
    answers: dict[str, Answer] | None = Field(
        description="once completed (or while staff enter it)"
    )
    scores: dict[str, Any] | None = Field(description="once completed")
    corrections: list[CorrectionRead]
    alerts_raised: int = Field(default=0, description="safety alerts this request raised")
    missed_reason: str | None = Field(
        default=None,
        description="why a missed survey was missed (unreachable, declined, too_unwell, "
        "other), once staff gave it",
    )
    missed_note: str | None = None


def staff_survey_read(survey: StaffSurvey) -> StaffSurveyRead:
    instance = survey.instance
    staff = instance.mode == "staff"
    return StaffSurveyRead(
        timepoint=instance.timepoint,
        status=survey.status,
        opens_on=instance.opens_on,
        closes_on=instance.closes_on,
        mode=instance.mode,
        entered_by=survey.entered_by,
        interviewed_on=instance.interviewed_on if staff else None,
        assessor_blind=instance.assessor_blind if staff else None,
        instruments=[i.code for i in survey.instruments],
        answers=survey.answers(),
        scores=survey.scores(),
        corrections=[
            CorrectionRead(
                item=c.item,
                old=c.old_value,
                new=c.new_value,
                reason=c.reason,
                by=survey.emails.get(c.corrected_by),
                at=c.corrected_at,
            )
            for c in survey.shown_corrections()
        ],
        alerts_raised=len(survey.alerts),
        missed_reason=instance.missed_reason,
        missed_note=instance.missed_note,
    )
