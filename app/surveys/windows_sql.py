"""The survey window rules of `scheduling` as SQL expressions, for queries that filter or
count surveys by status (the worklist, the scheduler's planner) in the database.

Each expression says in SQL what `scheduling.status` (and `overdue`, `due_messages`)
say in Python, over any columns named as a survey instance's are: `opens_on`,
`closes_on` (dates in the study's time zone, both ends included), `completed_at` and
`cancelled_at` (an event counts once it has happened, at or before `now`). `today` is
`scheduling.local_date(now, zone)`, worked out by the caller. A property test
(tests/surveys/test_windows_sql.py) checks that both forms agree, on SQLite and
PostgreSQL, for random windows, instants and events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, literal, or_

from app.surveys.scheduling import SurveyStatus

# A survey instance's window and events, as columns: its mapped class, or a table's `c`.
Columns = Any


def _happened(column: Any, now: datetime) -> ColumnElement[bool]:
    return and_(column.is_not(None), column <= now)


def completed(c: Columns, *, now: datetime) -> ColumnElement[bool]:
    return _happened(c.completed_at, now)


def pending(c: Columns, *, now: datetime) -> ColumnElement[bool]:
    """Neither completed nor cancelled by `now`."""
    return and_(
        or_(c.completed_at.is_(None), c.completed_at > now),
        or_(c.cancelled_at.is_(None), c.cancelled_at > now),
    )


def scheduled(c: Columns, *, today: date, now: datetime) -> ColumnElement[bool]:
    return and_(pending(c, now=now), c.opens_on > today)


def is_open(c: Columns, *, today: date, now: datetime) -> ColumnElement[bool]:
    return and_(pending(c, now=now), c.opens_on <= today, c.closes_on >= today)


def missed(c: Columns, *, today: date, now: datetime) -> ColumnElement[bool]:
    return and_(pending(c, now=now), c.closes_on < today)


def overdue(
    c: Columns, *, today: date, now: datetime, reminder_days: Sequence[int]
) -> ColumnElement[bool]:
    """Open and past its last reminder (`scheduling.overdue`); never without reminders."""
    if not reminder_days:
        return false()
    last = today - timedelta(days=max(reminder_days))
    return and_(is_open(c, today=today, now=now), c.opens_on <= last)


def status(c: Columns, *, today: date, now: datetime) -> ColumnElement[str]:
    """The status (`SurveyStatus` values), as `scheduling.status` gives it."""
    return case(
        (completed(c, now=now), literal(SurveyStatus.completed.value)),
        (_happened(c.cancelled_at, now), literal(SurveyStatus.cancelled.value)),
        (c.opens_on > today, literal(SurveyStatus.scheduled.value)),
        (c.closes_on < today, literal(SurveyStatus.missed.value)),
        else_=literal(SurveyStatus.open.value),
    )


def messages_owed(c: Columns, *, today: date, reminder_days: Sequence[int]) -> Any:
    """How many messages an open survey is owed by `today`: 1 (the invitation) and one
    for each reminder day come (`len(scheduling.due_messages(...))` while it is open)."""
    offsets = sorted(set(reminder_days), reverse=True)
    count = len(offsets) + 1
    if not offsets:
        return literal(1)
    return case(
        *[
            (c.opens_on <= today - timedelta(days=days), count - k)
            for k, days in enumerate(offsets)
        ],
        else_=1,
    )
