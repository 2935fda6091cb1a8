"""When a survey is due (pure): windows as dates in the study's time zone, the one status
of a survey at any instant, and which invitations and reminders are due.

A timepoint's window runs from `day - open_before` to `day + close_after` days after its
anchor (the date of enrollment or of randomization), both ends included, as dates a
person reads in the study's time zone. The status is derived, the same way everywhere,
from the window, the instant and two events (completed, cancelled): nothing else is
stored, so it can never disagree with itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo


class SurveyStatus(StrEnum):
    scheduled = "scheduled"  # the window is not open yet
    open = "open"
    completed = "completed"
    missed = "missed"  # the window closed before it was completed
    cancelled = "cancelled"  # the participant withdrew before it was completed


@dataclass(frozen=True)
class Window:
    opens_on: date
    closes_on: date

    def __contains__(self, day: date) -> bool:
        return self.opens_on <= day <= self.closes_on


def local_date(at: datetime, zone: ZoneInfo) -> date:
    """The date a person in the study's time zone reads at the instant `at`."""
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no date anywhere")
    return at.astimezone(zone).date()


def window(
    anchor_at: datetime, zone: ZoneInfo, *, day: int, open_before: int, close_after: int
) -> Window:
    """The window of a timepoint whose anchor event happened at `anchor_at`."""
    target = local_date(anchor_at, zone) + timedelta(days=day)
    return Window(target - timedelta(days=open_before), target + timedelta(days=close_after))


def status(
    span: Window,
    *,
    now: datetime,
    zone: ZoneInfo,
    completed_at: datetime | None = None,
    cancelled_at: datetime | None = None,
) -> SurveyStatus:
    """The survey's status at the instant `now` (events after `now` have not happened)."""
    if completed_at is not None and completed_at <= now:
        return SurveyStatus.completed
    if cancelled_at is not None and cancelled_at <= now:
        return SurveyStatus.cancelled
    today = local_date(now, zone)
    if today < span.opens_on:
        return SurveyStatus.scheduled
    if today > span.closes_on:
        return SurveyStatus.missed
    return SurveyStatus.open


class Dated(Protocol):
    """Whatever carries a survey's window and events: an instance, or a row of them."""

    opens_on: date
    closes_on: date
    completed_at: datetime | None
    cancelled_at: datetime | None


def status_of(survey: Dated, *, now: datetime, zone: ZoneInfo) -> SurveyStatus:
    """The status of a survey (an instance or a row of its columns) at `now`."""
    return status(
        Window(survey.opens_on, survey.closes_on),
        now=now,
        zone=zone,
        completed_at=survey.completed_at,
        cancelled_at=survey.cancelled_at,
    )


def overdue(span: Window, *, now: datetime, zone: ZoneInfo, reminder_days: list[int]) -> bool:
    """Open and past its last reminder (the participant was reminded and still has not
    answered): the coordinator's worklist shows it."""
    if not reminder_days:
        return False
    today = local_date(now, zone)
    return today in span and today >= span.opens_on + timedelta(days=max(reminder_days))


class Message(StrEnum):
    invitation = "invitation"
    reminder = "reminder"


@dataclass(frozen=True)
class Due:
    """One message a survey is owed: what, and which (0: the invitation; k: reminder k)."""

    message: Message
    number: int
    due_on: date


def due_messages(span: Window, *, today: date, reminder_days: list[int]) -> list[Due]:
    """Every message owed by `today` while the window is open: the invitation once it
    opens, each reminder `d` days after it opens. None before it opens or after it
    closes (the caller asks only for open, uncompleted surveys)."""
    if today not in span:
        return []
    owed = [Due(Message.invitation, 0, span.opens_on)]
    for number, days in enumerate(sorted(set(reminder_days)), start=1):
        due_on = span.opens_on + timedelta(days=days)
        if due_on <= today and due_on in span:
            owed.append(Due(Message.reminder, number, due_on))
    return owed
