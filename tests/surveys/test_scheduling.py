"""Survey windows and statuses as pure rules: dates in the study's time zone, month
ends, leap days, and one status at every instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from app.surveys.scheduling import (
    Due,
    Message,
    SurveyStatus,
    Window,
    due_messages,
    local_date,
    overdue,
    status,
    window,
)

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_window_counts_days_from_the_anchor_date_both_ends_included():
    span = window(
        at("2027-01-10T15:00:00+00:00"), UTC_ZONE, day=120, open_before=14, close_after=28
    )
    assert span == Window(date(2027, 4, 26), date(2027, 6, 7))
    baseline = window(
        at("2027-01-10T15:00:00+00:00"), UTC_ZONE, day=0, open_before=0, close_after=14
    )
    assert baseline == Window(date(2027, 1, 10), date(2027, 1, 24))


def test_month_ends_and_leap_days():
    jan31 = at("2028-01-31T12:00:00+00:00")
    assert window(jan31, UTC_ZONE, day=29, open_before=0, close_after=0).opens_on == date(
        2028, 2, 29
    )
    assert window(jan31, UTC_ZONE, day=30, open_before=0, close_after=0).opens_on == date(
        2028, 3, 1
    )
    leap_day = at("2028-02-29T12:00:00+00:00")
    assert window(leap_day, UTC_ZONE, day=365, open_before=0, close_after=0).opens_on == date(
        2029, 2, 28
    )


def test_the_anchor_date_is_the_date_in_the_study_time_zone():
    # 03:30 UTC on 1 March is still 28 February in New York, and already 1 March (16:30)
    # in Auckland: the baseline window opens on the date people there read.
    enrolled = at("2027-03-01T03:30:00+00:00")
    assert window(enrolled, NEW_YORK, day=0, open_before=0, close_after=0).opens_on == date(
        2027, 2, 28
    )
    assert window(enrolled, AUCKLAND, day=0, open_before=0, close_after=0).opens_on == date(
        2027, 3, 1
    )


def test_a_window_opens_and_closes_at_local_midnight():
    span = Window(date(2027, 3, 14), date(2027, 3, 20))  # New York changes clocks on 14 March
    just_before = at("2027-03-14T04:59:59+00:00")  # 23:59:59 on the 13th in New York
    assert status(span, now=just_before, zone=NEW_YORK) is SurveyStatus.scheduled
    assert status(span, now=at("2027-03-14T05:00:00+00:00"), zone=NEW_YORK) is SurveyStatus.open
    last_minute = at("2027-03-21T03:59:00+00:00")  # 23:59 on the 20th (EDT)
    assert status(span, now=last_minute, zone=NEW_YORK) is SurveyStatus.open
    assert status(span, now=at("2027-03-21T04:00:00+00:00"), zone=NEW_YORK) is SurveyStatus.missed


def test_completion_and_cancellation_count_from_when_they_happened():
    span = Window(date(2027, 1, 1), date(2027, 1, 10))
    done = at("2027-01-05T10:00:00+00:00")
    assert status(span, now=at("2027-01-04T00:00:00+00:00"), zone=UTC_ZONE, completed_at=done) is (
        SurveyStatus.open
    )
    later = at("2027-02-01T00:00:00+00:00")
    assert status(span, now=later, zone=UTC_ZONE, completed_at=done) is SurveyStatus.completed
    assert status(span, now=later, zone=UTC_ZONE, cancelled_at=done) is SurveyStatus.cancelled


def test_invitation_then_reminders_on_their_days_and_nothing_after_the_window():
    span = Window(date(2027, 1, 1), date(2027, 1, 14))
    assert due_messages(span, today=date(2026, 12, 31), reminder_days=[3, 7]) == []
    assert due_messages(span, today=date(2027, 1, 3), reminder_days=[3, 7]) == [
        Due(Message.invitation, 0, date(2027, 1, 1))
    ]
    assert [d.number for d in due_messages(span, today=date(2027, 1, 8), reminder_days=[7, 3])] == [
        0,
        1,
        2,
    ]
    assert due_messages(span, today=date(2027, 1, 15), reminder_days=[3, 7]) == []
    short = Window(date(2027, 1, 1), date(2027, 1, 5))  # a reminder after the close is never due
    assert [
        d.number for d in due_messages(short, today=date(2027, 1, 5), reminder_days=[3, 7])
    ] == [0, 1]


def test_overdue_means_open_and_past_the_last_reminder():
    span = Window(date(2027, 1, 1), date(2027, 1, 14))
    assert not overdue(
        span, now=at("2027-01-07T12:00:00+00:00"), zone=UTC_ZONE, reminder_days=[3, 7]
    )
    assert overdue(span, now=at("2027-01-08T12:00:00+00:00"), zone=UTC_ZONE, reminder_days=[3, 7])
    assert not overdue(
        span, now=at("2027-01-15T12:00:00+00:00"), zone=UTC_ZONE, reminder_days=[3, 7]
    )
    assert not overdue(span, now=at("2027-01-08T12:00:00+00:00"), zone=UTC_ZONE, reminder_days=[])


instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
zones = st.sampled_from([UTC_ZONE, NEW_YORK, AUCKLAND, ZoneInfo("Asia/Kolkata")])


@given(
    anchor=instants,
    zone=zones,
    day=st.integers(-30, 400),
    open_before=st.integers(0, 60),
    close_after=st.integers(0, 60),
    now=instants,
    completed=st.one_of(st.none(), instants),
    cancelled=st.one_of(st.none(), instants),
)
def test_every_survey_is_in_exactly_one_status_at_any_instant(
    anchor, zone, day, open_before, close_after, now, completed, cancelled
):
    span = window(anchor, zone, day=day, open_before=open_before, close_after=close_after)
    found = status(span, now=now, zone=zone, completed_at=completed, cancelled_at=cancelled)
    today = local_date(now, zone)
    holds = {
        SurveyStatus.completed: completed is not None and completed <= now,
        SurveyStatus.cancelled: (completed is None or completed > now)
        and cancelled is not None
        and cancelled <= now,
        SurveyStatus.scheduled: today < span.opens_on,
        SurveyStatus.open: today in span,
        SurveyStatus.missed: today > span.closes_on,
    }
    assert holds[found]
    later = status(
        span, now=now + timedelta(days=1), zone=zone, completed_at=completed, cancelled_at=cancelled
    )
    order = [SurveyStatus.scheduled, SurveyStatus.open, SurveyStatus.missed]
    if found in order and later in order:  # time only moves a survey forward
        assert order.index(later) >= order.index(found)
    if found in (SurveyStatus.completed, SurveyStatus.cancelled):
        assert later is found  # an event is final
