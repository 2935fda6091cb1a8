"""Safety tables: adverse events and their versions, reporting deadlines, protocol
deviations and their versions.

What a version says (terms, dates, assessments, free text) is sealed at rest; only what
queries need stays plain: which study, site and participant, the version numbers, the
deadlines' due times and whether they were met. Versions are only ever added: the
unique (record, number) pair keeps two concurrent follow-ups from taking one number,
and `versions` on the record is the counter both take theirs from (an atomic UPDATE).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import SealedJSON, SealedText


class AdverseEvent(Base):
    """One adverse event of a participant; what it says is in its versions."""

    __tablename__ = "adverse_events"
    __table_args__ = (UniqueConstraint("study_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    number: Mapped[int]  # AE-1, AE-2, ... within the study
    # The safety alert it was opened from, if any (one event per alert at most).
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("survey_alerts.id"), unique=True)
    versions: Mapped[int]  # how many versions it has: the next takes versions + 1
    closed: Mapped[bool]
    opened_at: Mapped[datetime]
    opened_by: Mapped[int] = mapped_column(ForeignKey("users.id"))


class AdverseEventVersion(Base):
    """One version of an event: initial, follow-up, review or closure."""

    __tablename__ = "adverse_event_versions"
    __table_args__ = (UniqueConstraint("event_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("adverse_events.id"))
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))  # events.VersionKind
    fields: Mapped[dict[str, Any]] = mapped_column(SealedJSON("adverse_event_versions.fields"))
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))


class SafetyDeadline(Base):
    """A reporting deadline of one event (one of the study's `safety.deadlines`): when
    it is due, whether it still applies (a follow-up or review can change that), and
    when it was met (reported on, with the recipient's reference)."""

    __tablename__ = "safety_deadlines"
    __table_args__ = (
        UniqueConstraint("event_id", "code"),
        Index("ix_safety_deadlines_open", "study_id", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("adverse_events.id"))
    code: Mapped[str] = mapped_column(String(64))
    report_to: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime]
    applies: Mapped[bool]
    reported_on: Mapped[date | None]
    reference: Mapped[str | None] = mapped_column(SealedText("safety_deadlines.reference"))
    reported_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reported_at: Mapped[datetime | None]


class ProtocolDeviation(Base):
    """One protocol deviation of a participant; what it says is in its versions."""

    __tablename__ = "protocol_deviations"
    __table_args__ = (UniqueConstraint("study_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    number: Mapped[int]  # PD-1, PD-2, ... within the study
    state: Mapped[str] = mapped_column(String(16))  # deviation_rules.DeviationState
    # What a system proposal was found from (e.g. "outside_window:survey:12"): one
    # proposal per finding, however often the finder runs.
    source: Mapped[str | None] = mapped_column(String(100), unique=True)
    versions: Mapped[int]
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: proposed


class ProtocolDeviationVersion(Base):
    """One version of a deviation."""

    __tablename__ = "protocol_deviation_versions"
    __table_args__ = (UniqueConstraint("deviation_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deviation_id: Mapped[int] = mapped_column(ForeignKey("protocol_deviations.id"))
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))  # deviation_rules.DeviationVersionKind
    fields: Mapped[dict[str, Any]] = mapped_column(SealedJSON("protocol_deviation_versions.fields"))
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
