"""The SQL forms of the survey window rules (app/surveys/windows_sql.py) agree with the
pure rules of app/surveys/scheduling.py, on SQLite and PostgreSQL, for random windows,
instants, events and reminder days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, delete, insert, select

from app.surveys import scheduling, windows_sql
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus, Window

_instance = SurveyInstance.__table__.c
PROBE = Table(
    "windows_probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    # The very column types of a survey instance (dates; UTC timestamps).
    *(Column(name, _instance[name].type) for name in scheduling.Dated.__annotations__),
)
ZONES = [ZoneInfo(z) for z in ("UTC", "America/New_York", "Pacific/Kiritimati", "Asia/Kolkata")]
START = datetime(2026, 3, 1, tzinfo=UTC)  # around the spring's clock changes

instants = st.integers(min_value=0, max_value=60 * 24 * 60).map(
    lambda minutes: START + timedelta(minutes=minutes)
)
survey = st.fixed_dictionaries(
    {
        "opens_on": st.integers(min_value=-3, max_value=62).map(
            lambda d: START.date() + timedelta(days=d)
        ),
        "length": st.integers(min_value=0, max_value=20),
        "completed_at": st.none() | instants,
        "cancelled_at": st.none() | instants,
    }
)


def _row(drawn: dict) -> dict:
    return {
        "opens_on": drawn["opens_on"],
        "closes_on": drawn["opens_on"] + timedelta(days=drawn["length"]),
        "completed_at": drawn["completed_at"],
        "cancelled_at": drawn["cancelled_at"],
    }


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    surveys=st.lists(survey, min_size=1, max_size=12),
    now=instants,
    zone=st.sampled_from(ZONES),
    reminder_days=st.lists(st.integers(min_value=1, max_value=14), max_size=3),
)
def test_sql_and_python_give_every_survey_the_same_status(db, surveys, now, zone, reminder_days):
    today = scheduling.local_date(now, zone)
    rows = [_row(s) for s in surveys]
    c = PROBE.c
    query = select(
        c.id,
        windows_sql.status(c, today=today, now=now),
        windows_sql.is_open(c, today=today, now=now),
        windows_sql.scheduled(c, today=today, now=now),
        windows_sql.missed(c, today=today, now=now),
        windows_sql.overdue(c, today=today, now=now, reminder_days=reminder_days),
        windows_sql.messages_owed(c, today=today, reminder_days=reminder_days),
    ).order_by(c.id)
    with db.engine.begin() as connection:
        PROBE.create(connection, checkfirst=True)
        connection.execute(delete(PROBE))
        connection.execute(insert(PROBE), [{"id": n, **r} for n, r in enumerate(rows)])
        found = connection.execute(query).all()
    assert len(found) == len(rows)
    for row, answer in zip(rows, found, strict=True):
        _, status, is_open, scheduled, missed, overdue, owed = answer
        span = Window(row["opens_on"], row["closes_on"])
        expected = scheduling.status(
            span,
            now=now,
            zone=zone,
            completed_at=row["completed_at"],
            cancelled_at=row["cancelled_at"],
        )
        assert SurveyStatus(status) is expected, row
        assert bool(is_open) == (expected is SurveyStatus.open)
        assert bool(scheduled) == (expected is SurveyStatus.scheduled)
        assert bool(missed) == (expected is SurveyStatus.missed)
        late = scheduling.overdue(span, now=now, zone=zone, reminder_days=reminder_days)
        assert bool(overdue) == (expected is SurveyStatus.open and late)
        if expected is SurveyStatus.open:
            due = scheduling.due_messages(span, today=today, reminder_days=reminder_days)
            assert owed == len(due)


def test_the_probe_covers_every_status(db):
    """The strategies above reach each status (else agreement would prove little)."""
    now = START + timedelta(days=10)
    today: date = now.date()
    rows = [
        {"opens_on": today + timedelta(days=1), "closes_on": today + timedelta(days=3)},
        {"opens_on": today, "closes_on": today},
        {"opens_on": today - timedelta(days=3), "closes_on": today - timedelta(days=1)},
        {"opens_on": today, "closes_on": today, "completed_at": now},
        {"opens_on": today, "closes_on": today, "cancelled_at": now - timedelta(hours=1)},
        {"opens_on": today, "closes_on": today, "completed_at": now + timedelta(seconds=1)},
    ]
    c = PROBE.c
    with db.engine.begin() as connection:
        PROBE.create(connection, checkfirst=True)
        connection.execute(delete(PROBE))
        connection.execute(
            insert(PROBE),
            [
                {"id": n, "completed_at": None, "cancelled_at": None, **r}
                for n, r in enumerate(rows)
            ],
        )
        found = connection.scalars(
            select(windows_sql.status(c, today=today, now=now)).order_by(c.id)
        ).all()
    assert found == ["scheduled", "open", "missed", "completed", "cancelled", "open"]
