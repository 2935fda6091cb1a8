"""The participant-level file (pure): one row per enrolled participant (SPEC 8).

Its columns are the dataset's participant columns (pseudonym, group, site when the
study stratifies by it, each stratification factor) and what happened to the person:
status, how they were screened and consented (`source`: by staff, or online through
the public link; decided before randomization, the same rule in every arm, so it tells
no arm), the study day of randomization, and how, when and why they left. Enrolled
participants not (yet) randomized are in it with an empty group, as in the long and wide
files, so that every enrolled person is counted (a REDCap report lists every record).

Calendar dates are never exported: `randomized_day` counts days from the study's first
randomization (its nominal day 0, in the study's time zone), `withdrawn_day` days from
the participant's own randomization (negative when the date recorded precedes it; from
enrollment-only participants it is empty, since they have no randomization), and
`intervention_stopped_day` likewise to the day they stopped the intervention (kept when
they later leave the study altogether).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.exports.labels import (
    PARTICIPANT_STATUS_LABELS,
    SOURCE_LABELS,
    WITHDRAWAL_KIND_LABELS,
    labelled,
)
from app.exports.layout import participant_columns
from app.exports.model import DAYS, Column, ParticipantRecord
from app.participants.leaving import CATEGORY_LABELS
from app.studies.definition import StudyDefinition

STUDY_DAY = "days from the study's first randomization"


def columns(definition: StudyDefinition) -> list[Column]:
    """Every column of the participant file, in order."""
    return [
        *participant_columns(definition),
        Column(
            "status",
            "Participant status",
            "string",
            lambda p, _: p.status,
            values=labelled(PARTICIPANT_STATUS_LABELS),
            closed=True,
        ),
        Column(
            "source",
            "How the participant was screened and consented (staff, or online)",
            "string",
            lambda p, _: p.source,
            values=labelled(SOURCE_LABELS),
            closed=True,
        ),
        Column(
            "randomized_day",
            "Study day of randomization (0 = the day of the study's first randomization)",
            "integer",
            _randomized_day,
            unit=STUDY_DAY,
        ),
        Column(
            "withdrawal_kind",
            "What the participant stopped (empty: still in the study)",
            "string",
            lambda p, _: p.withdrawal_kind,
            values=labelled(WITHDRAWAL_KIND_LABELS),
            closed=True,
        ),
        Column(
            "withdrawal_category",
            "Reason for leaving (coded category)",
            "string",
            lambda p, _: p.withdrawal_category,
            values=labelled({c.value: label for c, label in CATEGORY_LABELS.items()}),
            closed=True,
        ),
        Column(
            "withdrawn_day",
            "Days from randomization to the date the participant left",
            "integer",
            _withdrawn_day,
            unit=DAYS,
        ),
        Column(
            "intervention_stopped_day",
            "Days from randomization to the date the participant stopped the intervention",
            "integer",
            _intervention_stopped_day,
            unit=DAYS,
        ),
    ]


def rows(record: ParticipantRecord, cols: list[Column]) -> Iterator[list[Any]]:
    """The participant's one row."""
    yield [c.get(record, None) for c in cols]


def _randomized_day(p: ParticipantRecord, _: str | None) -> int | None:
    if p.randomized_on is None or p.first_randomization_on is None:
        return None
    return (p.randomized_on - p.first_randomization_on).days


def _withdrawn_day(p: ParticipantRecord, _: str | None) -> int | None:
    if p.withdrawn_on is None or p.randomized_on is None:
        return None
    return (p.withdrawn_on - p.randomized_on).days


def _intervention_stopped_day(p: ParticipantRecord, _: str | None) -> int | None:
    if p.intervention_stopped_on is None or p.randomized_on is None:
        return None
    return (p.intervention_stopped_on - p.randomized_on).days
