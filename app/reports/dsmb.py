"""The DSMB report (pure): its tables counted from plain rows, and the letters that code
the groups of its closed part.

Two parts, as ICH E9 and the FDA's guidance on data monitoring committees ask:

- **open**: pooled, no group split; for every staff role. Nothing in it depends on who
  is in which arm, so a blind role may read it.
- **closed**: the same tables by group, the groups coded `A`, `B`, `C`... with letters
  of the report's own (`group_letters`), and a key to the letters in an appendix; for
  the unblinded statistician, admins and DSMB members only.

Every table is rows by columns of counts (`Table`), so the JSON answer, the HTML page and
the PDF draw the same thing. No participant code, name, date of a participant or free
text appears: only counts, coded values (MedDRA organ classes are codes of a
dictionary) and the labels of the study's own definition.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from app.engagement.usage import GroupUsage
from app.participants.leaving import KIND_LABELS, LeavingKind
from app.participants.lifecycle import ParticipantStatus
from app.randomization.blocks import HmacStream
from app.safety import labels
from app.safety.deviation_rules import DeviationCategory, DeviationState, DeviationStateView
from app.safety.events import EventState, Severity, is_death, is_serious
from app.surveys.scheduling import SurveyStatus


class Part(StrEnum):
    open = "open"
    closed = "closed"


TOTAL = "total"
NOT_RANDOMIZED = "not_randomized"
NOT_CODED = "Not coded"
NOT_RECORDED = "Not recorded"
# The context of the letters' key: another derivation of the blinding key than the
# export's group codes (`HmacStream(key, "groups")`), so the letters tell nothing of them.
LETTERS_CONTEXT = b"trialdesk dsmb letters"


def group_letters(blinding_key: bytes, arms: Sequence[str]) -> dict[str, str]:
    """Arm code → letter (`A`, `B`, ...), in a stable order of the study's own.

    The order is a Fisher-Yates shuffle drawn from a key derived from the study's
    blinding key with its own context (HMAC-SHA256(key, LETTERS_CONTEXT)): stable from
    one report to the next (the blinding key is kept in the database and survives a
    rotation of the server key), unknown without the key, and independent of the
    export's `G1..Gk` (a DSMB member who knows the letters learns nothing of the export's
    codes, and a blind statistician who knows the codes nothing of the letters)."""
    derived = hmac.new(blinding_key, LETTERS_CONTEXT, hashlib.sha256).digest()
    dealt = list(arms)
    stream = HmacStream(derived, "letters")
    for i in range(len(dealt) - 1, 0, -1):
        j = stream.below(i + 1)
        dealt[i], dealt[j] = dealt[j], dealt[i]
    return {arm: string.ascii_uppercase[n] for n, arm in enumerate(dealt)}


@dataclass(frozen=True)
class Column:
    code: str
    label: str


@dataclass(frozen=True)
class Row:
    label: str
    counts: dict[str, float]  # column code → count (a median or a percentage: a number)


@dataclass(frozen=True)
class Table:
    code: str
    title: str
    columns: list[Column]
    rows: list[Row]
    note: str | None = None


@dataclass(frozen=True)
class Section:
    code: str
    title: str
    tables: list[Table]


@dataclass(frozen=True)
class GroupKey:
    letter: str
    arm: str
    label: str


@dataclass(frozen=True)
class DsmbReport:
    part: Part
    study_title: str
    study_slug: str
    time_zone: str
    generated_at: datetime  # UTC
    generated_on: date  # in the study's time zone
    activated_on: date | None
    locked_on: date | None
    sections: list[Section]
    key: list[GroupKey] = field(default_factory=list)  # closed part only


@dataclass(frozen=True)
class Person:
    """One participant as the report counts them: no code, no name."""

    id: int
    site: str
    status: str
    enrolled: bool
    randomized_month: str | None  # YYYY-MM in the study's time zone; None: not randomized
    leaving: str | None  # LeavingKind, or None


@dataclass(frozen=True)
class Inputs:
    """What the service read: people, sites, surveys, deviations and events."""

    people: Sequence[Person]
    sites: Sequence[tuple[str, str]]  # (code, name), in the order shown
    # (group code, timepoint) → surveys by status; the group "total" when pooled
    surveys: Mapping[tuple[str, str], Counter[SurveyStatus]]
    timepoints: Sequence[tuple[str, str]]  # (code, label)
    deviations: Sequence[tuple[int, DeviationStateView]]  # (participant id, state)
    events: Sequence[tuple[int, EventState]]  # (participant id, state)
    # Use of the intervention by group column (closed part only: it reveals the arm)
    usage: Mapping[str, GroupUsage] | None = None


@dataclass(frozen=True)
class Grouping:
    """How the randomized are split: `group_of` participant id → group column code."""

    groups: list[Column]  # for the open part: none
    group_of: Mapping[int, str]

    @property
    def split(self) -> bool:
        return bool(self.groups)

    def randomized_columns(self) -> list[Column]:
        """Columns of a table about the randomized."""
        return [*self.groups, Column(TOTAL, "Total")]

    def everyone_columns(self) -> list[Column]:
        """Columns of a table about every participant (some never randomized)."""
        if not self.split:
            return [Column(TOTAL, "Total")]
        return [*self.groups, Column(NOT_RANDOMIZED, "Not randomized"), Column(TOTAL, "Total")]

    def column_of(self, participant_id: int) -> str | None:
        """The group column of a participant (None when pooled)."""
        if not self.split:
            return None
        return self.group_of.get(participant_id, NOT_RANDOMIZED)


def _row(label: str, counter: Counter[str], columns: Sequence[Column]) -> Row:
    return Row(label, {c.code: counter[c.code] for c in columns})


class _Tally:
    """Counts per column, the total counted once per thing."""

    def __init__(self, grouping: Grouping) -> None:
        self.grouping = grouping
        self.counts: defaultdict[Any, Counter[str]] = defaultdict(Counter)

    def add(self, key: Any, participant_id: int, n: int = 1) -> None:
        counter = self.counts[key]
        counter[TOTAL] += n
        column = self.grouping.column_of(participant_id)
        if column is not None:
            counter[column] += n

    def row(self, key: Any, label: str, columns: Sequence[Column]) -> Row:
        return _row(label, self.counts[key], columns)


def build(
    inputs: Inputs,
    *,
    part: Part,
    grouping: Grouping,
    study_title: str,
    study_slug: str,
    time_zone: str,
    generated_at: datetime,
    generated_on: date,
    activated_on: date | None,
    locked_on: date | None,
    key: Sequence[GroupKey] = (),
) -> DsmbReport:
    """The report's sections from what was read."""
    sections = [
        _recruitment(inputs, grouping),
        _retention(inputs, grouping),
        _leaving(inputs, grouping),
        _deviations(inputs, grouping),
        _adverse_events(inputs, grouping),
    ]
    if inputs.usage is not None and part is Part.closed:
        sections.append(_usage(inputs.usage, grouping))
    return DsmbReport(
        part=part,
        study_title=study_title,
        study_slug=study_slug,
        time_zone=time_zone,
        generated_at=generated_at,
        generated_on=generated_on,
        activated_on=activated_on,
        locked_on=locked_on,
        sections=sections,
        key=list(key) if part is Part.closed else [],
    )


def _recruitment(inputs: Inputs, grouping: Grouping) -> Section:
    total = [Column(TOTAL, "Total")]
    stages = [
        Column("screened", "Screened"),
        Column("eligible", "Eligible"),
        Column("enrolled", "Enrolled"),
        Column("randomized", "Randomized"),
    ]
    per_site: defaultdict[str, Counter[str]] = defaultdict(Counter)
    randomized = _Tally(grouping)
    months = _Tally(grouping)
    for person in inputs.people:
        counter = per_site[person.site]
        counter["screened"] += 1
        counter["eligible"] += person.status != ParticipantStatus.ineligible
        counter["enrolled"] += person.enrolled
        if person.randomized_month is not None:
            counter["randomized"] += 1
            randomized.add(person.site, person.id)
            months.add(person.randomized_month, person.id)
    every: Counter[str] = Counter()
    for counter in per_site.values():
        every.update(counter)
    tables = [
        Table(
            "recruitment",
            "Recruitment",
            total,
            [Row(c.label, {TOTAL: every[c.code]}) for c in stages],
            note="Eligible: screened and not found ineligible. Enrolled and randomized "
            "count everyone who ever was, withdrawn or not (intention to treat).",
        ),
        Table(
            "recruitment_by_site",
            "Recruitment by site",
            stages,
            [_row(f"{name} ({code})", per_site[code], stages) for code, name in inputs.sites],
        ),
    ]
    if grouping.split:
        columns = grouping.randomized_columns()
        tables.append(
            Table(
                "randomized_by_site",
                "Randomized by site and group",
                columns,
                [randomized.row(code, f"{name} ({code})", columns) for code, name in inputs.sites],
            )
        )
    columns = grouping.randomized_columns()
    tables.append(
        Table(
            "randomized_by_month",
            "Randomized by month",
            columns,
            [months.row(m, m, columns) for m in sorted(months.counts)],
            note="Months of randomization in the study's time zone.",
        )
    )
    return Section("recruitment", "Recruitment", tables)


_MEASURES = (
    Column("expected", "Expected"),
    Column("completed", "Completed"),
    Column("missed", "Missed"),
    Column("pending", "Not yet due"),
)
_RETENTION_NOTE = (
    "Surveys of randomized participants. Expected: completed, or not completed by the "
    "close of its window (missed). Not yet due: scheduled or open. Surveys cancelled "
    "when a participant left are not counted."
)


def _measures(counted: Counter[SurveyStatus]) -> Counter[str]:
    completed, missed = counted[SurveyStatus.completed], counted[SurveyStatus.missed]
    return Counter(
        expected=completed + missed,
        completed=completed,
        missed=missed,
        pending=counted[SurveyStatus.scheduled] + counted[SurveyStatus.open],
    )


def _retention(inputs: Inputs, grouping: Grouping) -> Section:
    if not grouping.split:
        rows = [
            _row(label, _measures(inputs.surveys.get((TOTAL, code), Counter())), _MEASURES)
            for code, label in inputs.timepoints
        ]
        table = Table("retention", "Surveys by timepoint", list(_MEASURES), rows, _RETENTION_NOTE)
        return Section("retention", "Retention", [table])
    columns = grouping.randomized_columns()
    tables = []
    for code, label in inputs.timepoints:
        by_column: dict[str, Counter[str]] = {}
        every: Counter[SurveyStatus] = Counter()
        for group in grouping.groups:
            counted = inputs.surveys.get((group.code, code), Counter())
            every.update(counted)
            by_column[group.code] = _measures(counted)
        by_column[TOTAL] = _measures(every)
        rows = [
            Row(m.label, {c.code: by_column[c.code][m.code] for c in columns}) for m in _MEASURES
        ]
        tables.append(Table(f"retention_{code}", label, columns, rows, _RETENTION_NOTE))
    return Section("retention", "Retention", tables)


def _leaving(inputs: Inputs, grouping: Grouping) -> Section:
    columns = grouping.everyone_columns()
    tally = _Tally(grouping)
    for person in inputs.people:
        if person.leaving is not None:
            tally.add(person.leaving, person.id)
        elif person.status == ParticipantStatus.withdrawn:
            # A withdrawal recorded before kinds existed was a withdrawal from follow-up.
            tally.add(LeavingKind.follow_up.value, person.id)
    rows = [tally.row(kind.value, KIND_LABELS[kind], columns) for kind in LeavingKind]
    table = Table(
        "leaving",
        "Leaving the study, by kind",
        columns,
        rows,
        note="Each participant counted once, by the last kind recorded.",
    )
    return Section("leaving", "Leaving the study", [table])


def _deviations(inputs: Inputs, grouping: Grouping) -> Section:
    columns = grouping.everyone_columns()
    tally = _Tally(grouping)
    for participant_id, deviation in inputs.deviations:
        if deviation.state is not DeviationState.confirmed:
            continue
        tally.add(str(deviation.fields.get("category", DeviationCategory.other)), participant_id)
        tally.add("all", participant_id)
        if deviation.fields.get("important"):
            tally.add("important", participant_id)
    rows = [tally.row(code, label, columns) for code, label in labels.DEVIATION_CATEGORY.items()]
    rows += [
        tally.row("all", "All deviations", columns),
        tally.row("important", "Of which important", columns),
    ]
    table = Table(
        "deviations",
        "Protocol deviations by category",
        columns,
        rows,
        note="Confirmed deviations only: proposals not yet decided and dismissed ones "
        "are left out.",
    )
    return Section("deviations", "Protocol deviations", [table])


_SEVERITY_LABELS = {**labels.SEVERITY, NOT_RECORDED: NOT_RECORDED}


def _adverse_events(inputs: Inputs, grouping: Grouping) -> Section:
    columns = grouping.everyone_columns()
    events = _Tally(grouping)
    people = _Tally(grouping)
    seen: set[tuple[str, int]] = set()

    def person(key: str, participant_id: int) -> None:
        if (key, participant_id) not in seen:
            seen.add((key, participant_id))
            people.add(key, participant_id)

    for participant_id, state in inputs.events:
        fields = state.effective
        serious = "serious" if is_serious(fields) else "not_serious"
        severity = str(fields.get("AESEV"))
        severity = severity if severity in _SEVERITY_LABELS else NOT_RECORDED
        # Only the 27 classes' names become row labels (a value stored before AEBODSYS
        # was coded, whatever it says, counts as not coded).
        organ_class = labels.organ_class(str(fields.get("AEBODSYS") or "")) or NOT_CODED
        for key in ("all", serious, f"severity:{severity}", f"soc:{organ_class}"):
            events.add(key, participant_id)
            person(key, participant_id)
        if is_death(fields):
            events.add("death", participant_id)
            person("death", participant_id)
    overview = Table(
        "adverse_events",
        "Adverse events",
        columns,
        [
            events.row("all", "Events", columns),
            people.row("all", "Participants with at least one event", columns),
            events.row("serious", "Serious events", columns),
            people.row("serious", "Participants with at least one serious event", columns),
            events.row("not_serious", "Non-serious events", columns),
            people.row("not_serious", "Participants with at least one non-serious event", columns),
            events.row("death", "Events resulting in death", columns),
            people.row("death", "Participants who died of an adverse event", columns),
        ],
        note="Serious: marked serious or meeting a seriousness criterion. Each event as "
        "its versions leave it (follow-ups and closure included).",
    )
    severities = [s.value for s in Severity]
    if any(k == f"severity:{NOT_RECORDED}" for k in events.counts):
        severities.append(NOT_RECORDED)
    by_severity = Table(
        "adverse_events_by_severity",
        "Adverse events by severity",
        columns,
        [events.row(f"severity:{s}", _SEVERITY_LABELS[s], columns) for s in severities],
    )
    classes = sorted(
        (k.removeprefix("soc:") for k in events.counts if k.startswith("soc:")),
        key=lambda c: (c == NOT_CODED, c.casefold()),
    )
    by_class = Table(
        "adverse_events_by_organ_class",
        "Adverse events by system organ class (MedDRA)",
        columns,
        [events.row(f"soc:{c}", c, columns) for c in classes],
    )
    people_by_class = Table(
        "participants_by_organ_class",
        "Participants with at least one event, by system organ class",
        columns,
        [people.row(f"soc:{c}", c, columns) for c in classes],
    )
    return Section(
        "adverse_events", "Adverse events", [overview, by_severity, by_class, people_by_class]
    )


def _usage(usage: Mapping[str, GroupUsage], grouping: Grouping) -> Section:
    """CONSORT-EHEALTH's use of the intervention (item 17b) by group: who used it at all,
    how many weeks and posts (median and quartiles, non-users counted as 0), and who used
    it in the last 30 days. Closed part only: use differs by arm by design."""
    columns = grouping.randomized_columns()

    def row(label: str, value: Callable[[GroupUsage], float | None]) -> Row:
        values = {c.code: value(usage[c.code]) for c in columns if c.code in usage}
        return Row(label, {code: v for code, v in values.items() if v is not None})

    def quartile(name: str, index: int) -> Callable[[GroupUsage], float | None]:
        def pick(u: GroupUsage) -> float | None:
            figures = getattr(u, name)
            return None if figures is None else figures[index]

        return pick

    rows = [
        row("Randomized", lambda u: u.randomized),
        row("Used the intervention at least once", lambda u: u.any_use),
        row("Active weeks, median", quartile("active_weeks", 0)),
        row("Active weeks, 25th percentile", quartile("active_weeks", 1)),
        row("Active weeks, 75th percentile", quartile("active_weeks", 2)),
        row("Posts and replies, median", quartile("posts", 0)),
        row("Posts and replies, 25th percentile", quartile("posts", 1)),
        row("Posts and replies, 75th percentile", quartile("posts", 2)),
        row("Used in the last 30 days", lambda u: u.used_last_month),
        row("Used in the last 30 days, % of randomized", lambda u: u.used_last_month_percent),
    ]
    table = Table(
        "intervention_use",
        "Use of the intervention (CONSORT-EHEALTH 17b)",
        columns,
        rows,
        note="From each participant's randomization on; an active week is a week of their "
        "follow-up with any event; posts are events of kind post or reply; everyone "
        "randomized counts, non-users as 0.",
    )
    return Section("intervention_use", "Use of the intervention", [table])


def cells(table: Table) -> Iterable[list[str]]:
    """The table as text: the header row, then each row (for the PDF)."""
    yield ["", *(c.label for c in table.columns)]
    for row in table.rows:
        yield [row.label, *(str(row.counts.get(c.code, 0)) for c in table.columns)]
