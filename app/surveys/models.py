"""Survey instances (one per participant and timepoint), retired links, safety alerts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import SealedJSON, SealedText


class SurveyInstance(Base):
    """A timepoint of one participant: its window, its link, its answers.

    Its status is derived (see `surveys.scheduling.status`) from the window and two
    events, `completed_at` and `cancelled_at`; the participant's code and site are kept
    here too, so that worklists and messages need no other table.
    """

    __tablename__ = "survey_instances"
    __table_args__ = (
        UniqueConstraint("participant_id", "timepoint"),
        # The console's worklist: surveys still to answer, soonest closing first.
        Index(
            "ix_survey_instances_pending_by_closing",
            "study_id",
            "closes_on",
            "id",
            sqlite_where=text("completed_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=text("completed_at IS NULL AND cancelled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    participant_code: Mapped[str] = mapped_column(String(32))
    timepoint: Mapped[str] = mapped_column(String(64))
    # Instrument codes, arm-limited ones already chosen: sealed, as they tell arms apart.
    instruments: Mapped[list[Any]] = mapped_column(SealedJSON("survey_instances.instruments"))
    anchor_at: Mapped[datetime]
    opens_on: Mapped[date] = mapped_column(index=True)
    closes_on: Mapped[date]
    issue: Mapped[int] = mapped_column(default=1)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    answers: Mapped[dict[str, Any]] = mapped_column(SealedJSON("survey_instances.answers"))
    scores: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON("survey_instances.scores"))
    messages_enqueued: Mapped[int] = mapped_column(default=0)  # invitation, then reminders
    saved_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # `self` through the link, `staff` when a coordinator entered it in an interview:
    # then who entered it, the interview's date and whether the assessor was blind.
    mode: Mapped[str] = mapped_column(String(8), default="self", server_default="self")
    # The language the survey was answered in (SPEC 10), set when it is saved or submitted.
    language: Mapped[str | None] = mapped_column(String(8))
    entered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    interviewed_on: Mapped[date | None]
    assessor_blind: Mapped[bool | None]
    # SPEC 11: why a missed survey was missed (`unreachable`, `declined`, `too_unwell`,
    # `other`), with a note (sealed), who gave it and when.
    missed_reason: Mapped[str | None] = mapped_column(String(16))
    missed_note: Mapped[str | None] = mapped_column(SealedText("survey_instances.missed_note"))
    missed_reason_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    missed_reason_at: Mapped[datetime | None]


class RetiredLink(Base):
    """The hash of a link replaced by a new one: it answers 410, not 404."""

    __tablename__ = "survey_retired_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("survey_instances.id"))


class Alert(Base):
    """A safety rule a submitted survey met: on the site's worklist until acknowledged."""

    __tablename__ = "survey_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("survey_instances.id"))
    participant_code: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(SealedText("survey_alerts.rule"))  # tells the answer
    text: Mapped[str] = mapped_column(SealedText("survey_alerts.text"))  # names answers
    raised_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(SealedText("survey_alerts.note"))


class AnswerCorrection(Base):
    """A stored answer corrected after submission: the original and the new value, who,
    when and why. Rows are only ever added (a correction of a correction is another
    row); the survey's `answers` hold the current values. The item is sealed too: an
    item of an instrument only some arms answer would tell the arm."""

    __tablename__ = "answer_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("survey_instances.id"), index=True)
    item: Mapped[str] = mapped_column(SealedText("answer_corrections.item"))
    # None: no answer (an answer added where none was given, or one taken back).
    old_value: Mapped[Any] = mapped_column(
        SealedJSON("answer_corrections.old_value"), nullable=True
    )
    new_value: Mapped[Any] = mapped_column(
        SealedJSON("answer_corrections.new_value"), nullable=True
    )
    reason: Mapped[str] = mapped_column(SealedText("answer_corrections.reason"))
    corrected_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    corrected_at: Mapped[datetime]
