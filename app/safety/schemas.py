"""Adverse-event API schemas: what staff send (an event, a version, a deadline met, an
alert's acknowledgement) and what they read (events with their versions and deadlines,
the due list).

Inputs forbid unknown fields and bound every string. What the blinding policy hides
from a role has no field in its schema: `EventRead` has no `reviewed` block, and a
review version's `fields` are null in it; `EventReadReviewed` adds them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.safety.events import (
    ASSESSMENT,
    SERIOUSNESS_CRITERIA,
    ActionTaken,
    EventState,
    Outcome,
    Relatedness,
    Severity,
    Version,
    VersionKind,
    fold,
    is_death,
    is_serious,
)
from app.safety.labels import event_label, organ_class
from app.safety.models import AdverseEvent, AdverseEventVersion, SafetyDeadline
from app.surveys.models import Alert

# ASCII digits, the whole string: `\d` also takes other scripts' digits (fullwidth ones), and
# `$` a final newline ("2026-01\n"), which the exports would then not read as a date.
_PARTIAL = re.compile(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?")


def _partial_date(value: str) -> str:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD`, naming a real month and day."""
    if not _PARTIAL.fullmatch(value):
        raise ValueError("give the date as YYYY-MM-DD, or YYYY-MM or YYYY if partly known")
    year, month, day = [*value.split("-"), "01", "01"][:3]
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        raise ValueError(f"{value} is not a date") from None
    if int(year) < 1900:
        raise ValueError(f"{value} is too early")
    return value


def _iso_date(value: object) -> object:
    """A calendar date only as `YYYY-MM-DD` (not a number of seconds, not a date-time)."""
    if value is not None and not (isinstance(value, str) and len(value) == 10):
        raise ValueError("give the date as YYYY-MM-DD")
    return value


def _organ_class(value: str) -> str:
    """One of the 27 MedDRA system organ classes, in any case; stored as MedDRA spells it."""
    canonical = organ_class(value)
    if canonical is None:
        raise ValueError(
            "give one of the 27 MedDRA system organ classes by its English name, "
            'like "Psychiatric disorders"'
        )
    return canonical


PartialDate = Annotated[str, Field(max_length=10), AfterValidator(_partial_date)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Term = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Coded = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OrganClass = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_organ_class),
]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MeddraVersion = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
]
AlertId = Annotated[int, Field(ge=1, le=2**31 - 1)]

# Fields a report must have (the initial version); the rest are optional.
REQUIRED = ("AETERM", "AESTDTC", "AESEV", "AESER", "AEREL", "AEEXPECT", "AEOUT", "AEACN")
REVIEW_FIELDS = (*ASSESSMENT, "note")
# A death first learnt at closure: the DSMB's clock starts the day the team knew of it.
CLOSURE_FIELDS = ("AEOUT", "AEENDTC", "aware_on", "note")


class _ReportFields(BaseModel):
    """Every field a report may carry (all optional here)."""

    model_config = ConfigDict(extra="forbid")

    AETERM: Term | None = Field(default=None, description="the event in words (sealed)")
    AESTDTC: PartialDate | None = Field(default=None, description="onset (partial allowed)")
    AEENDTC: PartialDate | None = Field(default=None, description="end (partial allowed)")
    AESEV: Severity | None = None
    AESER: StrictBool | None = Field(default=None, description="serious (true if any criterion is)")
    AESDTH: StrictBool | None = None
    AESLIFE: StrictBool | None = None
    AESHOSP: StrictBool | None = None
    AESDISAB: StrictBool | None = None
    AESCONG: StrictBool | None = None
    AESMIE: StrictBool | None = None
    AEREL: Relatedness | None = Field(default=None, description="related to the intervention")
    AERELPROC: Relatedness | None = Field(
        default=None, description="related to research procedures"
    )
    AEEXPECT: StrictBool | None = Field(default=None, description="expected per the protocol")
    AEOUT: Outcome | None = None
    AEACN: ActionTaken | None = None
    AEDECOD: Coded | None = Field(default=None, description="MedDRA preferred term")
    AEBODSYS: OrganClass | None = Field(
        default=None, description="MedDRA system organ class: one of the 27, by its English name"
    )
    meddra_version: MeddraVersion | None = None
    aware_on: IsoDate | None = Field(
        default=None,
        description="the day the team became aware (deadline clocks start there); "
        "default today in the study's time zone",
    )
    unanticipated: StrictBool | None = Field(
        default=None, description="an unanticipated problem (risks to participants or others)"
    )
    note: Note | None = Field(default=None, description="free text of this version (sealed)")

    def given(self) -> dict[str, Any]:
        """The fields the caller gave (not null), as stored: JSON values."""
        return {
            k: v
            for k, v in self.model_dump(mode="json", exclude_unset=True).items()
            if v is not None and k in _ReportFields.model_fields
        }


class EventDraft(_ReportFields):
    """An event's fields as an alert's acknowledgement gives them: they complete (or
    replace) what the alert prefills."""


class EventCreate(_ReportFields):
    """The initial report. Required: AETERM, AESTDTC, AESEV, AESER, AEREL, AEEXPECT,
    AEOUT, AEACN; the seriousness criteria and `unanticipated` default to false."""

    AETERM: Term = Field(description="the event in words (sealed)")
    AESTDTC: PartialDate = Field(description="onset: YYYY-MM-DD, or YYYY-MM / YYYY")
    AESEV: Severity
    AESER: StrictBool
    AEREL: Relatedness
    AEEXPECT: StrictBool
    AEOUT: Outcome
    AEACN: ActionTaken
    alert: AlertId | None = Field(
        default=None, description="the safety alert it follows (acknowledged with it)"
    )

    def report(self) -> dict[str, Any]:
        """The initial version's fields: what was given, criteria defaulted to false."""
        fields = {c: False for c in SERIOUSNESS_CRITERIA} | {"unanticipated": False}
        return fields | self.given()


class VersionCreate(_ReportFields):
    """A follow-up (any report fields), a medical review (AEREL, AERELPROC, AEEXPECT,
    note: roles that may see arms only) or the closure (AEOUT, AEENDTC, note)."""

    kind: VersionKind = VersionKind.follow_up

    @field_validator("kind")
    @classmethod
    def _not_initial(cls, kind: VersionKind) -> VersionKind:
        if kind is VersionKind.initial:
            raise ValueError("kind must be follow_up, review or closure")
        return kind

    @model_validator(mode="after")
    def _fields_of_kind(self) -> VersionCreate:
        given = set(self.given())
        allowed = {
            VersionKind.review: REVIEW_FIELDS,
            VersionKind.closure: CLOSURE_FIELDS,
        }.get(self.kind)
        if allowed is not None:
            extra = sorted(given - set(allowed))
            if extra:
                raise ValueError(f"a {self.kind.value} carries only {', '.join(allowed)}")
        if self.kind is VersionKind.review and not given & set(ASSESSMENT):
            raise ValueError("a review records at least one of AEREL, AERELPROC, AEEXPECT")
        if self.kind is VersionKind.follow_up and not given:
            raise ValueError("a follow-up says something: a field or a note")
        return self


class DeadlineReport(BaseModel):
    """A deadline met: the day the report was sent, and the recipient's reference."""

    model_config = ConfigDict(extra="forbid")

    reported_on: IsoDate
    reference: Reference


class AlertOutcome(StrEnum):
    no_event = "no_event"
    event = "event"


class AlertAcknowledgement(BaseModel):
    """What followed a safety alert: no event (with a note), or an adverse event opened
    from it (prefilled from the alert; `event` completes or replaces the prefill)."""

    model_config = ConfigDict(extra="forbid")

    outcome: AlertOutcome
    # Checked even when left out (validate_default), so a problem names its field.
    note: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
        | None
    ) = Field(default=None, validate_default=True)
    event: EventDraft | None = Field(default=None, validate_default=True)

    @field_validator("note")
    @classmethod
    def _no_event_needs_a_note(cls, note: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("outcome") is AlertOutcome.no_event and note is None:
            raise ValueError("no_event needs a note: what was done")
        return note

    @field_validator("event")
    @classmethod
    def _no_event_opens_none(
        cls, event: EventDraft | None, info: ValidationInfo
    ) -> EventDraft | None:
        if info.data.get("outcome") is AlertOutcome.no_event and event is not None:
            raise ValueError("no_event opens no event: leave out `event`")
        return event


# --- answers --------------------------------------------------------------------------


class EventRef(BaseModel):
    id: int
    number: str = Field(description='"AE-3"')


class AlertAcknowledged(BaseModel):
    """The alert as `GET .../alerts` lists it, with the event opened from it. Its fields
    repeat `app.surveys.schemas.AlertRead`: that module may be imported by app.surveys
    only (the "Only surveys builds surveys responses" contract), so no subclass."""

    id: int
    participant: str
    site: str
    rule: str
    text: str
    raised_at: datetime
    acknowledged_at: datetime | None
    note: str | None
    event: EventRef | None = Field(default=None, description="the event opened from it")


def alert_acknowledged(alert: Alert, *, site: str, event: AdverseEvent | None) -> AlertAcknowledged:
    return AlertAcknowledged(
        id=alert.id,
        participant=alert.participant_code,
        site=site,
        rule=alert.rule,
        text=alert.text,
        raised_at=alert.raised_at,
        acknowledged_at=alert.acknowledged_at,
        note=alert.note,
        event=EventRef(id=event.id, number=event_label(event.number))
        if event is not None
        else None,
    )


class VersionRead(BaseModel):
    number: int
    kind: VersionKind
    at: datetime
    by: str | None = Field(description="who recorded it (email)")
    fields: dict[str, Any] | None = Field(
        description="what this version says; null for a review shown to a role that may "
        "not see arms"
    )


class DueRead(BaseModel):
    code: str
    report_to: str
    due_at: datetime
    applies: bool
    reported_on: date | None
    reference: str | None
    overdue: bool = Field(description="applies, not met, and past due")


class EventRead(BaseModel):
    id: int
    number: str = Field(description='"AE-3": numbered within the study')
    participant: str
    site: str
    status: str = Field(description="open or closed")
    serious: bool
    death: bool
    alert: int | None
    opened_at: datetime
    version: int = Field(description="the number of its latest version")
    state: dict[str, Any] = Field(description="the reporter's fields, latest over earlier")
    versions: list[VersionRead]
    due: list[DueRead]


class EventReadReviewed(EventRead):
    reviewed: dict[str, Any] = Field(
        description="the medical review's causality and expectedness (empty if none)"
    )


class EventSummary(BaseModel):
    id: int
    number: str
    participant: str
    site: str
    status: str
    serious: bool
    death: bool
    term: str | None
    onset: str | None
    severity: str | None
    opened_at: datetime
    version: int
    overdue: bool = Field(description="a deadline of it is overdue")


class EventList(BaseModel):
    items: list[EventSummary]
    next: str | None


class DueItem(BaseModel):
    event: int
    number: str
    participant: str
    site: str
    code: str
    report_to: str
    due_at: datetime
    overdue: bool


class DueList(BaseModel):
    items: list[DueItem]
    next: str | None = None


# --- building answers -----------------------------------------------------------------


def as_version(row: AdverseEventVersion) -> Version:
    """A stored version as the pure rules take it."""
    return Version(row.number, VersionKind(row.kind), row.fields)


@dataclass(frozen=True)
class EventView:
    """An event with what its answer shows: its versions (in order), its deadlines, the
    participant's code and site, and the authors' emails."""

    event: AdverseEvent
    participant: str
    site: str
    versions: Sequence[AdverseEventVersion]
    deadlines: Sequence[SafetyDeadline]
    authors: Mapping[int, str]

    @property
    def number(self) -> str:
        return event_label(self.event.number)

    @property
    def state(self) -> EventState:
        return fold(as_version(v) for v in self.versions)

    def overdue(self, now: datetime) -> bool:
        return any(_overdue(d, now) for d in self.deadlines)


@dataclass(frozen=True)
class DueRow:
    deadline: SafetyDeadline
    event: AdverseEvent
    participant: str
    site: str


def _overdue(deadline: SafetyDeadline, now: datetime) -> bool:
    return deadline.applies and deadline.reported_on is None and now > deadline.due_at


def event_read(view: EventView, *, arms: bool, now: datetime) -> EventRead:
    """The event for a role: with `arms`, the review's fields and the `reviewed` block;
    without, a review is listed by kind, time and author only."""
    state = view.state
    versions = [
        VersionRead(
            number=v.number,
            kind=VersionKind(v.kind),
            at=v.recorded_at,
            by=view.authors.get(v.recorded_by),
            fields=dict(v.fields) if arms or v.kind != VersionKind.review else None,
        )
        for v in view.versions
    ]
    due = [
        DueRead(
            code=d.code,
            report_to=d.report_to,
            due_at=d.due_at,
            applies=d.applies,
            reported_on=d.reported_on,
            reference=d.reference,
            overdue=_overdue(d, now),
        )
        for d in view.deadlines
    ]
    common: dict[str, Any] = {
        "id": view.event.id,
        "number": view.number,
        "participant": view.participant,
        "site": view.site,
        "status": "closed" if view.event.closed else "open",
        "serious": is_serious(state.report),
        "death": is_death(state.report),
        "alert": view.event.alert_id,
        "opened_at": view.event.opened_at,
        "version": view.event.versions,
        "state": state.report,
        "versions": versions,
        "due": due,
    }
    if arms:
        return EventReadReviewed(**common, reviewed=state.review)
    return EventRead(**common)


def event_summary(view: EventView, *, now: datetime) -> EventSummary:
    report = view.state.report
    return EventSummary(
        id=view.event.id,
        number=view.number,
        participant=view.participant,
        site=view.site,
        status="closed" if view.event.closed else "open",
        serious=is_serious(report),
        death=is_death(report),
        term=report.get("AETERM"),
        onset=report.get("AESTDTC"),
        severity=report.get("AESEV"),
        opened_at=view.event.opened_at,
        version=view.event.versions,
        overdue=view.overdue(now),
    )


def due_item(row: DueRow, *, now: datetime) -> DueItem:
    return DueItem(
        event=row.event.id,
        number=event_label(row.event.number),
        participant=row.participant,
        site=row.site,
        code=row.deadline.code,
        report_to=row.deadline.report_to,
        due_at=row.deadline.due_at,
        overdue=_overdue(row.deadline, now),
    )
