"""The safety tables of the exports (pure): adverse events and protocol deviations, one
row per event (its state folded from its versions) and per confirmed deviation.

What a blinded safety table never holds, beyond what no export holds (names, codes,
calendar dates, free text: no `AETERM`, notes, descriptions or corrective actions):
`AEDECOD`, the MedDRA preferred term (typed by site staff among some 80,000 terms, so
free text in effect; `AEBODSYS` is one of the 27 organ classes and stays), and the
fields that can tell which coded group is which arm (docs/safety.md, "Exports").
They are given by an allow-list, as the dataset's columns are:

- `AEREL` (relatedness to the intervention): a control arm has no intervention, so its
  events are all "not related", and the related ones mark the intervention's group.
- `AERELPROC` (relatedness to research procedures): the procedures are the same in
  every arm, but the assessor attributes a study-caused event to one cause or the
  other, and only some arms offer the intervention as a cause; the control arm's
  study-caused events all land on the procedures, so its distribution differs by arm
  by construction.
- `AEACN` (action taken: intervention interrupted or withdrawn): only arms with an
  intervention can have it.
- The medical review (`reviewed*`), made by someone who sees the arms, and the number
  of versions (a review is one).

The unblinded table (for roles the study shows arms to, with a reason) carries them
all, `AEDECOD`, and the arm. Deviation categories are kept in both: `wrong_arm` exists in every
arm (anyone can be given another arm's intervention), so it tells nothing by itself.

Days are counted from the participant's randomization, as in the dataset (negative
before it; empty when the participant was not randomized). A partial date
(`YYYY-MM`, `YYYY`) gives no day: the day is empty and `*_precision` says `month` or
`year` (a full date says `day`), so an analyst can tell "unknown day" from "no date".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from app.exports.labels import DATE_PRECISION_LABELS, labelled
from app.exports.model import DAYS, Allocated, Column
from app.safety import labels
from app.safety.events import EventState
from app.studies.definition import StudyDefinition


class SafetyTable(StrEnum):
    adverse_events = "adverse_events"
    deviations = "deviations"


PRIMARY_KEYS: dict[SafetyTable, list[str]] = {
    SafetyTable.adverse_events: ["event_number"],
    SafetyTable.deviations: ["deviation_number"],
}


@dataclass(frozen=True)
class EventRecord:
    """One adverse event as the export reads it."""

    pseudonym: str
    group: str | None
    randomized_on: date | None
    number: int
    state: EventState
    allocation: Allocated | None = None


@dataclass(frozen=True)
class DeviationRecord:
    """One confirmed protocol deviation as the export reads it."""

    pseudonym: str
    group: str | None
    randomized_on: date | None
    number: int
    fields: Mapping[str, Any] = field(default_factory=dict)
    proposed_by_system: bool = False
    allocation: Allocated | None = None


SAFETY_DESCRIPTION = (
    "One row per adverse event (its current state, folded from every version recorded) or "
    "per confirmed protocol deviation; `pseudonym` is the participants file's. An empty "
    "cell (CSV) or null (JSON) is a value not recorded; a day is also empty when the date "
    "is partial (`*_precision` says month or year) or the participant was not randomized. "
    "No calendar date, free text (terms as written, notes, descriptions, corrective "
    "actions) or participant code is exported; in the blinded package, neither is any "
    "field that could tell the groups' arms (relatedness, action taken, medical review)."
)
Record = EventRecord | DeviationRecord
_FULL = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"\d{4}-\d{2}")
_YEAR = re.compile(r"\d{4}")


def precision(value: Any) -> str | None:
    """`day`, `month` or `year`: how much of a (possibly partial) ISO date is known;
    None when there is no date (or not one the export can read)."""
    if not isinstance(value, str):
        return None
    if _FULL.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            return None
        return "day"
    if _MONTH.fullmatch(value) and 1 <= int(value[5:]) <= 12:
        return "month"
    if _YEAR.fullmatch(value):
        return "year"
    return None


def days_from(value: Any, randomized_on: date | None) -> int | None:
    """Days from randomization to a full ISO date; None for a partial date, no date, or
    a participant not randomized."""
    if randomized_on is None or precision(value) != "day":
        return None
    return (date.fromisoformat(value) - randomized_on).days


def columns(definition: StudyDefinition, table: SafetyTable, *, unblinded: bool) -> list[Column]:
    """Every column of a safety table, in order (the blinded allow-list, plus the
    arm-revealing fields and the arm when `unblinded`)."""
    out = _participant(definition)
    if table is SafetyTable.adverse_events:
        out += _event_columns()
        if unblinded:
            out += _event_unblinded_columns()
    else:
        out += _deviation_columns()
    if unblinded:
        out += _arm_columns(definition)
    return out


def _participant(definition: StudyDefinition) -> list[Column]:
    arms = len(definition.arms)
    return [
        Column(
            "pseudonym",
            "Participant pseudonym (as in the participants file)",
            "string",
            lambda r, _: r.pseudonym,
        ),
        Column(
            "group",
            "Randomized group (coded; empty before randomization)",
            "string",
            lambda r, _: r.group,
            values=tuple((f"G{n}", f"Group {n}") for n in range(1, arms + 1)),
            closed=True,
        ),
    ]


def _report(name: str) -> Callable[[EventRecord, str | None], Any]:
    return lambda r, _: r.state.report.get(name)


def _flag(name: str) -> Callable[[EventRecord, str | None], Any]:
    def get(r: EventRecord, _: str | None) -> Any:
        value = r.state.report.get(name)
        return value if isinstance(value, bool) else None

    return get


def _day(name: str) -> Callable[[EventRecord, str | None], Any]:
    return lambda r, _: days_from(r.state.report.get(name), r.randomized_on)


def _precision(name: str) -> Callable[[EventRecord, str | None], Any]:
    return lambda r, _: precision(r.state.report.get(name))


def _coded(
    name: str, label: str, codes: dict[str, str], get: Callable[[Any, str | None], Any]
) -> Column:
    return Column(name, label, "string", get, values=labelled(codes), closed=True)


def _known(codes: dict[str, str], get: Callable[[Any, str | None], Any]) -> Any:
    """A getter giving only the codes the codebook lists (any other is empty), so the
    package's enum constraints hold."""
    return lambda r, t: v if (v := get(r, t)) in codes else None


def _event_columns() -> list[Column]:
    precisions = DATE_PRECISION_LABELS
    severities, outcomes = labels.SEVERITY, labels.OUTCOME
    organ_classes = {name: name for name in labels.ORGAN_CLASSES}
    return [
        Column(
            "event_number",
            "Adverse event number within the study (AE-n)",
            "integer",
            lambda r, _: r.number,
        ),
        Column("onset_day", "Days from randomization to onset (AESTDTC)", "integer",
               _day("AESTDTC"), unit=DAYS),
        _coded("onset_precision", "How much of the onset date is known (empty: no date)",
               precisions, _known(precisions, _precision("AESTDTC"))),
        Column("end_day", "Days from randomization to the end (AEENDTC; empty: ongoing)",
               "integer", _day("AEENDTC"), unit=DAYS),
        _coded("end_precision", "How much of the end date is known (empty: no end date)",
               precisions, _known(precisions, _precision("AEENDTC"))),
        Column("aware_day", "Days from randomization to the day the team became aware",
               "integer", _day("aware_on"), unit=DAYS),
        _coded("AEBODSYS", "MedDRA system organ class", organ_classes,
               _known(organ_classes, _report("AEBODSYS"))),
        Column("meddra_version", "MedDRA version of the coded terms", "string",
               _report("meddra_version")),
        _coded("AESEV", "Severity", severities, _known(severities, _report("AESEV"))),
        Column("AESER", "Serious event", "boolean", _flag("AESER")),
        *(Column(code, f"Serious: {label.lower()}", "boolean", _flag(code))
          for code, label in labels.CRITERIA.items()),
        Column("AEEXPECT", "Expected per the protocol (the reporter's assessment)",
               "boolean", _flag("AEEXPECT")),
        _coded("AEOUT", "Outcome", outcomes, _known(outcomes, _report("AEOUT"))),
        Column("unanticipated", "Unanticipated problem", "boolean", _flag("unanticipated")),
        Column("closed", "Event closed (its closure recorded)", "boolean",
               lambda r, _: r.state.closed),
    ]  # fmt: skip


def _event_unblinded_columns() -> list[Column]:
    related, actions = labels.RELATEDNESS, labels.ACTION

    def reviewed(name: str) -> Callable[[EventRecord, str | None], Any]:
        return lambda r, _: r.state.review.get(name)

    def reviewed_flag(r: EventRecord, _: str | None) -> Any:
        value = r.state.review.get("AEEXPECT")
        return value if isinstance(value, bool) else None

    return [
        # Free text in effect (some 80,000 terms): left out of the blinded table.
        Column("AEDECOD", "MedDRA preferred term", "string", _report("AEDECOD")),
        _coded("AEREL", "Relatedness to the intervention (the reporter's assessment)",
               related, _known(related, _report("AEREL"))),
        _coded("AERELPROC", "Relatedness to research procedures (the reporter's assessment)",
               related, _known(related, _report("AERELPROC"))),
        _coded("AEACN", "Action taken with the intervention", actions,
               _known(actions, _report("AEACN"))),
        Column("reviewed", "A medical review has been recorded", "boolean",
               lambda r, _: bool(r.state.review)),
        _coded("reviewed_AEREL", "Relatedness to the intervention (medical review)",
               related, _known(related, reviewed("AEREL"))),
        _coded("reviewed_AERELPROC", "Relatedness to research procedures (medical review)",
               related, _known(related, reviewed("AERELPROC"))),
        Column("reviewed_AEEXPECT", "Expected per the protocol (medical review)", "boolean",
               reviewed_flag),
        Column("versions", "Versions recorded (initial, follow-ups, reviews, closure)",
               "integer", lambda r, _: r.state.versions),
    ]  # fmt: skip


def _deviation_columns() -> list[Column]:
    categories = labels.DEVIATION_CATEGORY

    def important(r: DeviationRecord, _: str | None) -> Any:
        value = r.fields.get("important")
        return value if isinstance(value, bool) else None

    return [
        Column("deviation_number", "Protocol deviation number within the study (PD-n)",
               "integer", lambda r, _: r.number),
        _coded("category", "Deviation category", categories,
               _known(categories, lambda r, _: r.fields.get("category"))),
        Column("occurred_day", "Days from randomization to the day it occurred", "integer",
               lambda r, _: days_from(r.fields.get("occurred_on"), r.randomized_on), unit=DAYS),
        Column("important", "Important deviation", "boolean", important),
        Column("proposed_by_system", "Found by the system, then confirmed by staff",
               "boolean", lambda r, _: r.proposed_by_system),
    ]  # fmt: skip


def _arm_columns(definition: StudyDefinition) -> list[Column]:
    arms = tuple((a.code, a.label) for a in definition.arms)

    def allocated(name: str) -> Callable[[Record, str | None], Any]:
        return lambda r, _: getattr(r.allocation, name) if r.allocation else None

    return [
        Column("arm", "Allocated arm", "string", allocated("arm"), values=arms, closed=True),
        Column("arm_label", "Allocated arm (label)", "string", allocated("arm_label")),
    ]


def row(record: Record, cols: list[Column]) -> list[Any]:
    """The record's one row."""
    return [c.get(record, None) for c in cols]
