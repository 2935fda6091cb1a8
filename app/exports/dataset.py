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

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from app.studies.definition import Instrument, Item, ItemType, StudyDefinition, Timepoint
from app.surveys.scheduling import SurveyStatus

NOT_SCHEDULED = "not_scheduled"  # the timepoint was never scheduled for the participant
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


@dataclass(frozen=True)
class ParticipantRecord:
    pseudonym: str
    group: str | None  # None before randomization
    site: str
    strata: Mapping[str, str]
    randomized_on: date | None
    surveys: Mapping[str, SurveyRecord]  # by timepoint code
    allocation: Allocated | None = None


Getter = Callable[[ParticipantRecord, str | None], Any]


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


def exported_instruments(definition: StudyDefinition) -> list[Instrument]:
    """Instruments of the blinded dataset: all but those limited to some arms, unless the
    study releases them."""
    return [i for i in definition.instruments if i.arms is None or i.released_in_blinded_export]


def exported_timepoints(definition: StudyDefinition) -> list[Timepoint]:
    """Timepoints of the blinded dataset: those with an exported instrument. A timepoint
    made only of instruments limited to some arms is scheduled for those arms alone, so
    even its status would tell the arms apart."""
    exported = {i.code for i in exported_instruments(definition)}
    return [t for t in definition.schedule if exported.intersection(t.instruments)]


def exported_items(instrument: Instrument) -> list[Item]:
    """Items of the dataset: free text only where the study marks it `export: true`."""
    return [i for i in instrument.items if i.type is not ItemType.text or i.export]


def columns(definition: StudyDefinition, *, shape: Shape, unblinded: bool) -> list[Column]:
    """Every column of the study's dataset, in order."""
    out = _participant_columns(definition)
    instruments = exported_instruments(definition)
    if shape is Shape.long:
        out += _timepoint_columns(definition, prefix=None)
        for instrument in instruments:
            out += _instrument_columns(instrument, timepoint=None)
    else:
        for timepoint in exported_timepoints(definition):
            out += _timepoint_columns(definition, prefix=timepoint.code)
            for instrument in instruments:
                if instrument.code in timepoint.instruments:
                    out += _instrument_columns(instrument, timepoint=timepoint.code)
    if unblinded:
        out += _allocation_columns(definition)
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
                    row[i] = _value(item, answers.get(item.code), record.randomized_on)
                scores = survey.scores
                for i, code in self.scores.get(key, ()):
                    row[i] = scores.get(code)
            yield row


def _of_participant(col: Column) -> bool:
    return col.item is None and col.score is None and not col.per_row


def _participant_columns(definition: StudyDefinition) -> list[Column]:
    arms = len(definition.arms)
    out = [
        Column("pseudonym", "Participant pseudonym (stable within the study)", "string", _pseudo),
        Column(
            "group",
            "Randomized group (coded; empty before randomization)",
            "string",
            _group,
            values=tuple((f"G{n}", f"Group {n}") for n in range(1, arms + 1)),
            closed=True,
        ),
    ]
    if definition.randomization.stratify_by_site:
        out.append(Column("site", "Site (stratification factor)", "string", _site))
    for factor in definition.randomization.strata:
        out.append(
            Column(
                factor.code,
                f"Stratification factor {factor.code}",
                "string",
                _factor(factor.code),
                values=tuple((level, level) for level in factor.levels),
                closed=True,
            )
        )
    return out


def _timepoint_columns(definition: StudyDefinition, *, prefix: str | None) -> list[Column]:
    statuses = (*(s.value for s in SurveyStatus), NOT_SCHEDULED)
    status_values = tuple((s, s.replace("_", " ")) for s in statuses)
    if prefix is None:
        codes = tuple((t.code, t.code) for t in exported_timepoints(definition))
        return [
            Column(
                "timepoint",
                "Timepoint",
                "string",
                _timepoint,
                values=codes,
                closed=True,
                per_row=True,
            ),
            Column(
                "status",
                "Survey status",
                "string",
                _status(None),
                values=status_values,
                closed=True,
                per_row=True,
            ),
            Column(
                "days_from_randomization",
                "Days from randomization to completion",
                "integer",
                _days(None),
                unit=DAYS,
                per_row=True,
            ),
        ]
    return [
        Column(
            f"{prefix}_status",
            f"Survey status at {prefix}",
            "string",
            _status(prefix),
            values=status_values,
            closed=True,
            timepoint=prefix,
            per_row=True,
        ),
        Column(
            f"{prefix}_days_from_randomization",
            f"Days from randomization to completion of {prefix}",
            "integer",
            _days(prefix),
            unit=DAYS,
            timepoint=prefix,
            per_row=True,
        ),
    ]


def _instrument_columns(instrument: Instrument, *, timepoint: str | None) -> list[Column]:
    prefix = f"{timepoint}_" if timepoint else ""
    out = []
    for item in exported_items(instrument):
        kind, unit = _item_type(item)
        out.append(
            Column(
                prefix + item.code,
                item.text,
                kind,
                _answer(item, timepoint),
                unit=unit,
                values=tuple((o.value, o.label) for o in item.options or ()),
                closed=item.type is ItemType.choice,
                instrument=instrument.code,
                timepoint=timepoint,
                item=item,
            )
        )
    for score in instrument.scores:
        out.append(
            Column(
                prefix + score.code,
                f"{instrument.title}: score {score.code} ({score.method.value})",
                "number",
                _score(score.code, timepoint),
                instrument=instrument.code,
                timepoint=timepoint,
                score=score.code,
            )
        )
    return out


def _allocation_columns(definition: StudyDefinition) -> list[Column]:
    arms = tuple((a.code, a.label) for a in definition.arms)
    return [
        Column("arm", "Allocated arm", "string", _allocated("arm"), values=arms, closed=True),
        Column("arm_label", "Allocated arm (label)", "string", _allocated("arm_label")),
        Column("stratum", "Stratum of the allocation", "string", _allocated("stratum")),
        Column("block", "Block number within the stratum", "integer", _allocated("block")),
        Column("block_size", "Size of that block", "integer", _allocated("block_size")),
        Column("position", "Position within the block", "integer", _allocated("position")),
    ]


def _item_type(item: Item) -> tuple[str, str | None]:
    match item.type:
        case ItemType.choice:
            numeric = all(isinstance(o.value, int) for o in item.options or ())
            return ("integer" if numeric else "string"), None
        case ItemType.multi_choice:
            return "string", "chosen values separated by ';'"
        case ItemType.integer:
            return "integer", None
        case ItemType.number:
            return "number", None
        case ItemType.boolean:
            return "boolean", None
        case ItemType.date:
            return "integer", DAYS
        case ItemType.text:
            return "string", None


# Getters: (participant, timepoint of the row or None) → value.


def _pseudo(p: ParticipantRecord, _: str | None) -> Any:
    return p.pseudonym


def _group(p: ParticipantRecord, _: str | None) -> Any:
    return p.group


def _site(p: ParticipantRecord, _: str | None) -> Any:
    return p.site


def _factor(code: str) -> Getter:
    return lambda p, _: p.strata.get(code)


def _timepoint(_: ParticipantRecord, timepoint: str | None) -> Any:
    return timepoint


def _survey(p: ParticipantRecord, timepoint: str | None) -> SurveyRecord | None:
    return p.surveys.get(timepoint) if timepoint is not None else None


def _status(fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        return survey.status if survey else NOT_SCHEDULED

    return get


def _days(fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        if survey is None or survey.completed_on is None or p.randomized_on is None:
            return None
        return (survey.completed_on - p.randomized_on).days

    return get


def _answer(item: Item, fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        if survey is None or item.code not in survey.answers:
            return None
        return _value(item, survey.answers[item.code], p.randomized_on)

    return get


def _value(item: Item, value: Any, randomized_on: date | None) -> Any:
    if value is None:
        return None
    if item.type is ItemType.multi_choice:
        return ";".join(str(v) for v in value)
    if item.type is ItemType.date:  # a calendar date is never exported: days instead
        if randomized_on is None:
            return None
        return (date.fromisoformat(str(value)) - randomized_on).days
    return value


def _score(code: str, fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        return survey.scores.get(code) if survey else None

    return get


def _allocated(name: str) -> Getter:
    def get(p: ParticipantRecord, _: str | None) -> Any:
        return getattr(p.allocation, name) if p.allocation else None

    return get
