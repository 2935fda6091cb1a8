"""The records an export reads and the columns it writes (pure): see `dataset`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from app.studies.definition import Item

DAYS = "days from randomization"


class Shape(StrEnum):
    long = "long"  # one row per participant and timepoint
    wide = "wide"  # one row per participant, columns prefixed by timepoint


@dataclass(frozen=True)
class Allocated:
    """The allocation of a randomized participant, for the unblinded export only."""

    arm: str
    arm_label: str
    stratum: str
    block: int | None
    block_size: int | None
    position: int | None


@dataclass(frozen=True)
class SurveyRecord:
    status: str
    completed_on: date | None  # in the study's time zone; never exported as a date
    answers: Mapping[str, Any]
    scores: Mapping[str, Any]
    mode: str | None = None  # self | staff (completed surveys)
    interviewed_on: date | None = None  # the interview's date when staff entered it
    language: str | None = None  # the study language it was answered in (completed surveys)
    missed_reason: str | None = None  # why a missed survey was missed (SPEC 11), once given

    @property
    def dated_on(self) -> date | None:
        """The day the answers speak of: the interview's for staff entry, else the day
        the survey was completed."""
        if self.completed_on is None:
            return None
        if self.mode == "staff" and self.interviewed_on is not None:
            return self.interviewed_on
        return self.completed_on


@dataclass(frozen=True)
class ParticipantRecord:
    pseudonym: str
    group: str | None  # None before randomization
    site: str
    strata: Mapping[str, str]
    randomized_on: date | None
    surveys: Mapping[str, SurveyRecord]  # by timepoint code
    allocation: Allocated | None = None
    status: str = ""  # enrolled | randomized | withdrawn
    withdrawal_kind: str | None = None
    withdrawal_category: str | None = None
    withdrawn_on: date | None = None
    intervention_stopped_on: date | None = None
    first_randomization_on: date | None = None  # the study's day 0 (participant file)
    source: str = "staff"  # staff | join: who screened and consented them (participant file)


# (the record of a row, its timepoint or None) → value; the record is a `ParticipantRecord`
# for the dataset, an event or deviation for the safety tables (`safety_tables`).
Getter = Callable[[Any, str | None], Any]


@dataclass(frozen=True)
class Column:
    """One exported column: what the codebook says of it, and how its value is read."""

    name: str
    label: str
    type: str  # Table Schema type: string, integer, number, boolean
    get: Getter = field(repr=False, compare=False)
    unit: str | None = None
    values: tuple[tuple[int | str, str], ...] = ()  # values and their labels
    closed: bool = False  # the values are the only ones allowed (else: the choices of a
    # multi_choice item, or none)
    instrument: str | None = None
    timepoint: str | None = None
    # How `RowMaker` reads it fast: an item's answer or a score of the row's survey (the
    # one of `timepoint`, or of the row in the long shape); a value of the row's survey
    # (`per_row`); else a value of the participant.
    item: Item | None = field(default=None, repr=False, compare=False)
    score: str | None = field(default=None, repr=False, compare=False)
    per_row: bool = field(default=False, repr=False, compare=False)
    # Whether an answer or score may be below zero (SPSS missing codes are negative).
    may_be_negative: bool = field(default=False, repr=False, compare=False)

    @property
    def answer_like(self) -> bool:
        """An item's answer or a score: its missing values are "not given" or "skipped"."""
        return self.item is not None or self.score is not None

    def describe(self) -> dict[str, Any]:
        """The codebook's entry for this column."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "unit": self.unit,
            "values": [{"value": v, "label": label} for v, label in self.values] or None,
            "instrument": self.instrument,
            "timepoint": self.timepoint,
        }
