"""What a study's dataset holds: its columns and its rows (pure).

One list of `Column`s says everything about an export: the codebook is that list, the
data package's schema is that list, and each row is the list's getters applied to one
participant (and, in the long shape, one timepoint). A column that is not in the list
cannot be exported, and one that is cannot be missing from the codebook.

What a blinded dataset never holds: names, emails, phone numbers, participant codes,
calendar dates (completion is counted in days from randomization, and answers to date
items too), free text (unless the item is marked `export: true`), arms or arm labels
(the group codes come from the blinding key), and instruments limited to some arms
(they would reveal the arm) unless the study releases them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from app.exports.labels import NOT_SCHEDULED
from app.exports.layout import (
    allocation_columns,
    answer_value,
    exported_instruments,
    exported_items,
    exported_timepoints,
    instrument_columns,
    participant_columns,
    timepoint_columns,
    timepoint_label,
)
from app.exports.model import (
    DAYS,
    Allocated,
    Column,
    Getter,
    ParticipantRecord,
    Shape,
    SurveyRecord,
)
from app.studies.definition import Item, ItemType, StudyDefinition

__all__ = [
    "DAYS",
    "NOT_SCHEDULED",
    "Allocated",
    "Column",
    "Getter",
    "ParticipantRecord",
    "Shape",
    "SurveyRecord",
    "exported_instruments",
    "exported_items",
    "exported_timepoints",
    "timepoint_label",
]


def columns(definition: StudyDefinition, *, shape: Shape, unblinded: bool) -> list[Column]:
    """Every column of the study's dataset, in order."""
    out = participant_columns(definition)
    instruments = exported_instruments(definition)
    if shape is Shape.long:
        out += timepoint_columns(definition, prefix=None)
        for instrument in instruments:
            out += instrument_columns(instrument, timepoint=None)
    else:
        for timepoint in exported_timepoints(definition):
            out += timepoint_columns(definition, prefix=timepoint.code)
            for instrument in instruments:
                if instrument.code in timepoint.instruments:
                    out += instrument_columns(instrument, timepoint=timepoint.code)
    if unblinded:
        out += allocation_columns(definition)
    return out


def rows(
    record: ParticipantRecord, cols: Sequence[Column], definition: StudyDefinition, shape: Shape
) -> Iterator[list[Any]]:
    """The participant's rows: one per timepoint of the schedule (long), or one (wide)."""
    return RowMaker(cols, definition, shape)(record)


class RowMaker:
    """Makes the rows of a list of columns, participant after participant: values of the
    participant once, then per row one survey lookup and a plain `get` per answer (only
    multiple choices and dates are converted). Equivalent to calling each column's
    getter, several times faster on a large export."""

    def __init__(self, cols: Sequence[Column], definition: StudyDefinition, shape: Shape):
        self.width = len(cols)
        self.timepoints: list[str | None] = (
            [t.code for t in exported_timepoints(definition)] or [None]
            if shape is Shape.long
            else [None]
        )
        self.of_participant = [(i, c.get) for i, c in enumerate(cols) if _of_participant(c)]
        self.of_row = [(i, c.get) for i, c in enumerate(cols) if c.per_row]
        self.answers: dict[str | None, list[tuple[int, str]]] = {}
        self.converted: dict[str | None, list[tuple[int, Item]]] = {}
        self.scores: dict[str | None, list[tuple[int, str]]] = {}
        for i, col in enumerate(cols):
            if col.item is not None and col.item.type in (ItemType.multi_choice, ItemType.date):
                self.converted.setdefault(col.timepoint, []).append((i, col.item))
            elif col.item is not None:
                self.answers.setdefault(col.timepoint, []).append((i, col.item.code))
            elif col.score is not None:
                self.scores.setdefault(col.timepoint, []).append((i, col.score))
        self.surveys = set(self.answers) | set(self.converted) | set(self.scores)

    def __call__(self, record: ParticipantRecord) -> Iterator[list[Any]]:
        fixed: list[Any] = [None] * self.width
        for i, get in self.of_participant:
            fixed[i] = get(record, None)
        for timepoint in self.timepoints:
            row = fixed.copy()
            for i, get in self.of_row:
                row[i] = get(record, timepoint)
            for key in self.surveys:
                survey = record.surveys.get(key or timepoint or "")
                if survey is None:
                    continue
                answers = survey.answers
                for i, code in self.answers.get(key, ()):
                    row[i] = answers.get(code)
                for i, item in self.converted.get(key, ()):
                    row[i] = answer_value(item, answers.get(item.code), record.randomized_on)
                scores = survey.scores
                for i, code in self.scores.get(key, ()):
                    row[i] = scores.get(code)
            yield row


def _of_participant(col: Column) -> bool:
    return col.item is None and col.score is None and not col.per_row
