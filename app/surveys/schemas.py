"""Survey API schemas: a survey as its participant's link shows it, and the staff's
worklist, alerts and messages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.outbox.models import OutboxMessage
from app.studies.definition import Instrument
from app.surveys.layout import crisis_after, watched_items
from app.surveys.models import Alert, SurveyInstance
from app.surveys.service import OpenedSurvey

Answer = Any  # a JSON value; checked against its item by surveys.scoring
AnswersIn = Annotated[dict[Annotated[str, Field(max_length=64)], Answer], Field(max_length=1000)]


class OptionRead(BaseModel):
    value: int | str
    label: str


class ItemRead(BaseModel):
    code: str
    text: str
    type: str
    required: bool
    options: list[OptionRead] | None
    min: float | None
    max: float | None
    instructions: str | None = Field(default=None, description="shown under the question")
    section: str | None = Field(default=None, description="a heading shown before it")
    crisis_beside: bool = Field(
        default=False, description="the study's crisis text is shown after this question"
    )


class InstrumentRead(BaseModel):
    code: str
    title: str
    participant_title: str | None = Field(
        default=None, description="the title participants see (`title` if none of its own)"
    )
    instructions: str | None = Field(
        default=None, description="the stem and time frame, shown above the questions"
    )
    items: list[ItemRead]


class SurveyRead(BaseModel):
    """A survey as its personal link shows it (never anything else of the participant)."""

    study: str = Field(description="the study's name as participants see it")
    participant_title: str | None = Field(
        default=None, description="the study's name as participants see it (same as `study`)"
    )
    intro_minutes: int | None = Field(
        default=None, description="about how long the survey takes, when the study says"
    )
    crisis_text: str | None = Field(
        default=None, description="shown beside the questions marked `crisis_beside`"
    )
    timepoint: str
    status: str = Field(description="open, or completed")
    opens_on: date
    closes_on: date
    instruments: list[InstrumentRead]
    answers: dict[str, Answer]


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: AnswersIn = {}


class Submitted(BaseModel):
    status: str
    support_text: str | None = None
    crisis_text: str | None = Field(
        default=None, description="present when the answers raised a safety alert"
    )


def instrument_read(
    instrument: Instrument, *, crisis_beside: frozenset[str] = frozenset()
) -> InstrumentRead:
    return InstrumentRead(
        code=instrument.code,
        title=instrument.title,
        participant_title=instrument.shown_to_participants(),
        instructions=instrument.instructions,
        items=[
            ItemRead(
                code=item.code,
                text=item.text,
                type=item.type,
                required=item.required,
                options=[OptionRead(value=o.value, label=o.label) for o in item.options]
                if item.options
                else None,
                min=item.min,
                max=item.max,
                instructions=item.instructions,
                section=item.section,
                crisis_beside=item.code in crisis_beside,
            )
            for item in instrument.items
        ],
    )


def survey_read(opened: OpenedSurvey) -> SurveyRead:
    instance = opened.instance
    definition = opened.definition
    watched = watched_items(definition)
    intro = definition.intro
    return SurveyRead(
        study=definition.shown_to_participants(),
        participant_title=definition.shown_to_participants(),
        intro_minutes=intro.minutes if intro is not None and intro.enabled else None,
        crisis_text=definition.crisis_text,
        timepoint=instance.timepoint,
        status=opened.status,
        opens_on=instance.opens_on,
        closes_on=instance.closes_on,
        instruments=[
            instrument_read(i, crisis_beside=crisis_after(i.items, watched))
            for i in opened.instruments
        ],
        answers=instance.answers,
    )


class WorkItem(BaseModel):
    participant: str
    site: str
    timepoint: str
    status: str = Field(description="scheduled, open, completed, missed or cancelled")
    overdue: bool = Field(description="open, and past the last reminder")
    opens_on: date
    closes_on: date


class Worklist(BaseModel):
    items: list[WorkItem]
    next: str | None
    alerts_open: int = Field(description="safety alerts of these sites not yet acknowledged")
    messages_failed: int = Field(description="emails of these sites that could not be sent")


def work_item(instance: SurveyInstance, *, site: str, status: str, overdue: bool) -> WorkItem:
    return WorkItem(
        participant=instance.participant_code,
        site=site,
        timepoint=instance.timepoint,
        status=status,
        overdue=overdue,
        opens_on=instance.opens_on,
        closes_on=instance.closes_on,
    )


class AlertRead(BaseModel):
    id: int
    participant: str
    site: str
    rule: str
    text: str
    raised_at: datetime
    acknowledged_at: datetime | None
    note: str | None


class AlertList(BaseModel):
    items: list[AlertRead]
    next: str | None


def alert_read(alert: Alert, *, site: str) -> AlertRead:
    return AlertRead(
        id=alert.id,
        participant=alert.participant_code,
        site=site,
        rule=alert.rule,
        text=alert.text,
        raised_at=alert.raised_at,
        acknowledged_at=alert.acknowledged_at,
        note=alert.note,
    )


class MessageRead(BaseModel):
    id: int
    kind: str
    channel: str = "email"
    participant: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime


class MessageList(BaseModel):
    items: list[MessageRead]
    next: str | None


def message_read(message: OutboxMessage) -> MessageRead:
    return MessageRead(
        id=message.id,
        kind=message.kind,
        channel=message.channel,
        participant=message.participant_code,
        status=message.status,
        attempts=message.attempts,
        last_error=message.last_error,
        created_at=message.created_at,
    )
