"""Reporting deadlines (pure): which of the study's deadlines an adverse event must meet,
and when each is due (UTC), from the event's versions and the study's time zone.

Rules (SPEC 9, API.md `safety.deadlines`):

- `applies_to`: `serious` = `events.is_serious`; `serious_unexpected_related` = serious,
  unexpected and related (an expected hospitalisation starts no IRB clock);
  `death` = `events.is_death`; `unanticipated` = the `unanticipated` flag; `any` =
  every event. Each is asked of the event's *effective* state (a medical review's
  causality and expectedness over the reporter's).
- The clock starts on the day the team became aware (`aware_on`) of what the version
  that made the deadline apply says. If that is the day the version is recorded (in
  the study's zone), the clock starts at the moment of recording; if it is earlier, at
  the start of that day in the study's zone (the safe side: never later than the truth).
  A version that names no `aware_on` (a follow-up, a review) was learnt the day it was
  recorded.
- `within_hours`: start + hours, added in UTC (exact elapsed hours across a DST change).
- `within_working_days`: the end (23:59:59 local) of the Nth working day after the
  awareness day. Working days are Monday to Friday; public holidays are NOT skipped
  (they differ by site and year; a study whose IRB counts them gives fewer days).
- A deadline that stops applying (a follow-up, a review) is kept as not applying; if it
  applies again, its clock keeps the first start (the earliest due time: safe side).
  Once it is past due, a follow-up no longer lifts it (an overdue obligation cannot be
  edited away by the report it is about): only a medical review can, or reporting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.safety.events import (
    Version,
    VersionKind,
    fold,
    is_death,
    is_related,
    is_serious,
    is_unexpected,
)
from app.studies.definition import AppliesTo, Deadline

END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class Stamped:
    """A version with the moment it was recorded (UTC)."""

    version: Version
    recorded_at: datetime


@dataclass(frozen=True)
class Due:
    """One deadline of one event: whether it applies now, and when it is (or was) due."""

    code: str
    report_to: str
    applies: bool
    due_at: datetime  # UTC


def applies(rule: AppliesTo, fields: Mapping[str, Any]) -> bool:
    """Whether a deadline with this `applies_to` applies to an event in this state."""
    if rule is AppliesTo.any:
        return True
    if rule is AppliesTo.serious:
        return is_serious(fields)
    if rule is AppliesTo.serious_unexpected_related:
        return is_serious(fields) and is_unexpected(fields) and is_related(fields)
    if rule is AppliesTo.death:
        return is_death(fields)
    return fields.get("unanticipated") is True


def aware_day(stamped: Stamped, zone: ZoneInfo) -> date:
    """The day the team became aware of what the version says: its `aware_on`, else the
    day it was recorded (in the study's zone)."""
    given = stamped.version.fields.get("aware_on")
    if given:
        return date.fromisoformat(str(given))
    return stamped.recorded_at.astimezone(zone).date()


def clock_start(aware_on: date, recorded_at: datetime, zone: ZoneInfo) -> datetime:
    """When a clock starts (UTC): the moment of recording if the team became aware that
    day, else the start of the awareness day in the study's zone."""
    if aware_on >= recorded_at.astimezone(zone).date():
        return recorded_at.astimezone(UTC)
    return datetime.combine(aware_on, time(0), zone).astimezone(UTC)


def add_working_days(day: date, count: int) -> date:
    """The `count`th working day (Monday to Friday) after `day`."""
    found = 0
    while found < count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            found += 1
    return day


def due_at(deadline: Deadline, *, aware_on: date, start: datetime, zone: ZoneInfo) -> datetime:
    """When the deadline is due (UTC), for a clock started at `start` on `aware_on`."""
    if deadline.within_hours is not None:
        return start.astimezone(UTC) + timedelta(hours=deadline.within_hours)
    assert deadline.within_working_days is not None
    last = add_working_days(aware_on, deadline.within_working_days)
    return datetime.combine(last, END_OF_DAY, zone).astimezone(UTC)


def compute(
    deadlines: Sequence[Deadline], versions: Iterable[Stamped], zone: ZoneInfo
) -> list[Due]:
    """The event's deadlines after these versions: every one that applied at some
    version (with `applies` as of the last), in the study's order. A deadline that
    never applied is not listed."""
    ordered = sorted(versions, key=lambda s: s.version.number)
    started: dict[str, datetime] = {}
    now_applies: dict[str, bool] = {}
    for index, stamped in enumerate(ordered):
        state = fold(s.version for s in ordered[: index + 1]).effective
        for deadline in deadlines:
            applying = applies(deadline.applies_to, state)
            due = started.get(deadline.code)
            if (
                not applying
                and now_applies.get(deadline.code)
                and due is not None
                and stamped.recorded_at > due
                and stamped.version.kind is not VersionKind.review
            ):
                applying = True  # overdue: only a medical review may lift it now
            now_applies[deadline.code] = applying
            if applying and deadline.code not in started:
                day = aware_day(stamped, zone)
                start = clock_start(day, stamped.recorded_at, zone)
                started[deadline.code] = due_at(deadline, aware_on=day, start=start, zone=zone)
    return [
        Due(d.code, d.report_to, now_applies[d.code], started[d.code])
        for d in deadlines
        if d.code in started
    ]
