"""The columns of a study's dataset, built from its definition, and how each is read
(pure): see `dataset` for what a blinded dataset never holds."""

from __future__ import annotations

from datetime import date
from typing import Any

from app.exports.labels import (
    MISSED_LABELS,
    MODE_LABELS,
    NOT_SCHEDULED,
    STATUS_LABELS,
    humanized,
    labelled,
    language_labels,
)
from app.exports.model import DAYS, Column, Getter, ParticipantRecord, SurveyRecord
from app.studies.definition import Instrument, Item, ItemType, StudyDefinition, Timepoint


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


def participant_columns(definition: StudyDefinition) -> list[Column]:
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


def timepoint_label(timepoint: Timepoint) -> str:
    """ "Month 4 (day 120)": a timepoint's code made readable, with its nominal day."""
    return f"{humanized(timepoint.code)} (day {timepoint.day})"


def timepoint_columns(definition: StudyDefinition, *, prefix: str | None) -> list[Column]:
    statuses, modes = labelled(STATUS_LABELS), labelled(MODE_LABELS)
    reasons = labelled(MISSED_LABELS)
    why = "Why the survey was missed, as staff recorded it (empty when not missed or not given)"
    languages = language_labels(definition.languages)
    dated = (
        "from randomization to the survey's date (completion, or the interview when staff "
        "entered it; negative before randomization)"
    )
    planned = {t.code: t.day for t in definition.schedule}
    if prefix is None:
        codes = tuple((t.code, timepoint_label(t)) for t in exported_timepoints(definition))
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
                "planned_day",
                "Nominal day of the timepoint in the schedule (0, 120, 365...)",
                "integer",
                lambda _, t: planned.get(t or ""),
                unit="days from the timepoint's anchor",
                per_row=True,
            ),
            Column(
                "status",
                "Survey status",
                "string",
                _status(None),
                values=statuses,
                closed=True,
                per_row=True,
            ),
            Column(
                "missed_reason",
                why,
                "string",
                _missed(None),
                values=reasons,
                closed=True,
                per_row=True,
            ),
            Column(
                "mode",
                "How the survey was completed (empty when not completed)",
                "string",
                _mode(None),
                values=modes,
                closed=True,
                per_row=True,
            ),
            Column(
                "language",
                "Language the survey was answered in (empty when not completed)",
                "string",
                _language(None),
                values=languages,
                closed=True,
                per_row=True,
            ),
            Column(
                "days_from_randomization",
                f"Days {dated}",
                "integer",
                _days(None),
                unit=DAYS,
                per_row=True,
            ),
        ]
    day = planned[prefix]
    return [
        Column(
            f"{prefix}_planned_day",
            f"Nominal day of {prefix} in the schedule",
            "integer",
            lambda _, __: day,
            unit="days from the timepoint's anchor",
            timepoint=prefix,
            per_row=True,
        ),
        Column(
            f"{prefix}_status",
            f"Survey status at {prefix}",
            "string",
            _status(prefix),
            values=statuses,
            closed=True,
            timepoint=prefix,
            per_row=True,
        ),
        Column(
            f"{prefix}_missed_reason",
            f"{why}, {prefix}",
            "string",
            _missed(prefix),
            values=reasons,
            closed=True,
            timepoint=prefix,
            per_row=True,
        ),
        Column(
            f"{prefix}_mode",
            f"How {prefix} was completed (empty when not completed)",
            "string",
            _mode(prefix),
            values=modes,
            closed=True,
            timepoint=prefix,
            per_row=True,
        ),
        Column(
            f"{prefix}_language",
            f"Language {prefix} was answered in (empty when not completed)",
            "string",
            _language(prefix),
            values=languages,
            closed=True,
            timepoint=prefix,
            per_row=True,
        ),
        Column(
            f"{prefix}_days_from_randomization",
            f"Days {dated}, {prefix}",
            "integer",
            _days(prefix),
            unit=DAYS,
            timepoint=prefix,
            per_row=True,
        ),
    ]


def instrument_columns(instrument: Instrument, *, timepoint: str | None) -> list[Column]:
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
                may_be_negative=_may_be_negative(item),
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
                may_be_negative=any(
                    _may_be_negative(i) for i in instrument.items if i.code in score.items
                ),
            )
        )
    return out


def allocation_columns(definition: StudyDefinition) -> list[Column]:
    arms = tuple((a.code, a.label) for a in definition.arms)
    return [
        Column("arm", "Allocated arm", "string", _allocated("arm"), values=arms, closed=True),
        Column("arm_label", "Allocated arm (label)", "string", _allocated("arm_label")),
        Column("stratum", "Stratum of the allocation", "string", _allocated("stratum")),
        Column("block", "Block number within the stratum", "integer", _allocated("block")),
        Column("block_size", "Size of that block", "integer", _allocated("block_size")),
        Column("position", "Position within the block", "integer", _allocated("position")),
    ]


def _may_be_negative(item: Item) -> bool:
    match item.type:
        case ItemType.choice:
            return any(isinstance(o.value, int) and o.value < 0 for o in item.options or ())
        case ItemType.integer | ItemType.number:
            return item.min is None or item.min < 0
        case ItemType.date:
            return True  # days from randomization
        case _:
            return False


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
        dated_on = survey.dated_on if survey is not None else None
        if dated_on is None or p.randomized_on is None:
            return None
        return (dated_on - p.randomized_on).days

    return get


def _mode(fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        return survey.mode if survey is not None and survey.completed_on else None

    return get


def _missed(fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        return survey.missed_reason if survey is not None else None

    return get


def _language(fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        return survey.language if survey is not None and survey.completed_on else None

    return get


def _answer(item: Item, fixed: str | None) -> Getter:
    def get(p: ParticipantRecord, timepoint: str | None) -> Any:
        survey = _survey(p, fixed or timepoint)
        if survey is None or item.code not in survey.answers:
            return None
        return answer_value(item, survey.answers[item.code], p.randomized_on)

    return get


def answer_value(item: Item, value: Any, randomized_on: date | None) -> Any:
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
