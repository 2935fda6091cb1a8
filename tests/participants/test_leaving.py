"""Kinds of leaving (SPEC 8): what each stops, which may follow which, the date and
category rules, the queued messages a death stops, the trail and `verify`."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from app.db.base import utcnow
from app.participants.replay import replay
from app.scheduler import planner
from app.studies.models import Study
from tests.helpers import STUDY, bearer, study_today

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _leave(api, token: str, code: str, **body: Any):
    return api.client.post(
        f"{PARTICIPANTS}/{code}/withdraw",
        json={"reason": "told the team", **body},
        headers=bearer(token),
    )


def _randomized(api, token: str) -> str:
    code = api.enroll(token)
    assert api.randomize(token, code).status_code == 200
    return code


def _queue_messages(db, *, days: int = 0) -> None:
    """Put the invitations owed `days` from now in the outbox, without sending them."""
    at = utcnow() + timedelta(days=days)
    with db.begin() as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        rows = planner.owed_surveys(session, study=study, now=at, limit=50)
        planner.enqueue(session, study=study, now=at, rows=rows)


def _messages(db, code: str) -> list[str]:
    with db.engine.connect() as connection:
        return list(
            connection.execute(
                sa.text("SELECT status FROM outbox_messages WHERE participant_code = :c"),
                {"c": code},
            ).scalars()
        )


def test_stopping_the_intervention_keeps_follow_up_then_a_stronger_kind_may_follow(api):
    coordinator = api.user("coordinator", "PHL")
    code = _randomized(api, coordinator)
    stopped = _leave(api, coordinator, code, kind="intervention", category="adverse_event")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["status"] == "randomized"  # still followed and analysed (ITT)
    assert body["withdrawal_kind"] == "intervention"
    assert body["withdrawal_category"] == "adverse_event"
    assert body["withdrawn_on"] is not None and body["withdrawn_at"] is None
    assert api.survey_status(code, timepoint="month_4") == "scheduled"

    again = _leave(api, coordinator, code, kind="intervention")
    assert again.status_code == 409
    withdrew = _leave(api, coordinator, code, kind="follow_up", category="burden")
    assert withdrew.status_code == 200, withdrew.text
    assert withdrew.json()["status"] == "withdrawn"
    assert withdrew.json()["withdrawal_kind"] == "follow_up"
    assert withdrew.json()["arm"]  # the allocation is kept
    assert api.survey_status(code, timepoint="month_4") == "cancelled"
    for weaker in ("intervention", "lost", "follow_up"):
        assert _leave(api, coordinator, code, kind=weaker).status_code == 409
    assert _leave(api, coordinator, code, kind="died").status_code == 200
    assert _leave(api, coordinator, code, kind="data").status_code == 409  # died ends it


def test_the_plain_withdrawal_is_a_withdrawal_from_follow_up_dated_today(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    before = study_today()
    done = _leave(api, coordinator, code)
    after = study_today()
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["withdrawal_kind"], body["withdrawal_category"]) == (
        "withdrawn",
        "follow_up",
        "other",
    )
    assert date.fromisoformat(body["withdrawn_on"]) in (before, after)  # the study's day
    assert api.survey_status(code) == "cancelled"


def test_an_intervention_not_started_cannot_be_stopped(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    refused = _leave(api, coordinator, code, kind="intervention")
    assert refused.status_code == 409
    assert "not randomized" in refused.json()["detail"]


def test_bad_dates_kinds_and_categories_are_422_naming_the_field_and_store_nothing(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    today = study_today()

    def audit_count() -> int:
        with db.engine.connect() as connection:
            return connection.exec_driver_sql("SELECT COUNT(*) FROM audit_records").scalar_one()

    before = audit_count()
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"withdrawn_on": (today + timedelta(days=3)).isoformat()}, ("body", "withdrawn_on")),
        ({"withdrawn_on": (today - timedelta(days=30)).isoformat()}, ("body", "withdrawn_on")),
        ({"withdrawn_on": "yesterday"}, ("body", "withdrawn_on")),
        ({"withdrawn_on": 1700000000}, ("body", "withdrawn_on")),
        ({"withdrawn_on": "9999-12-31"}, ("body", "withdrawn_on")),
        ({"kind": "abducted"}, ("body", "kind")),
        ({"kind": ["died"]}, ("body", "kind")),
        ({"category": "x" * 10_000}, ("body", "category")),
        ({"category": "other\u0000"}, ("body",)),  # NUL is refused for the whole body
    ]
    for extra, loc in cases:
        response = _leave(api, coordinator, code, **extra)
        assert response.status_code == 422, (extra, response.text)
        assert tuple(response.json()["errors"][0]["loc"][: len(loc)]) == loc, response.text
    shown = api.client.get(f"{PARTICIPANTS}/{code}", headers=bearer(coordinator)).json()
    assert (shown["status"], shown["withdrawal_kind"], shown["withdrawn_on"]) == (
        "enrolled",
        None,
        None,
    )
    assert audit_count() == before


def test_a_death_stops_every_queued_message_at_once(api, db):
    coordinator = api.user("coordinator", "PHL")
    died = api.enroll(coordinator)
    _queue_messages(db)  # the baseline invitations
    assert _messages(db, died) == ["pending"]
    assert _leave(api, coordinator, died, kind="died", category="death").status_code == 200
    assert _messages(db, died) == ["skipped"]
    assert api.survey_status(died) == "cancelled"


def test_stopping_the_intervention_stops_no_message(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = _randomized(api, coordinator)
    _queue_messages(db, days=110)  # the month-4 window is open then
    assert _messages(db, code) == ["pending"]
    assert _leave(api, coordinator, code, kind="intervention").status_code == 200
    assert _messages(db, code) == ["pending"]
    assert _leave(api, coordinator, code, kind="lost").status_code == 200
    assert _messages(db, code) == ["skipped"]


def test_the_trail_records_kind_date_and_category_and_verify_replays_them(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = _randomized(api, coordinator)
    on = datetime.now(ZoneInfo("America/New_York")).date()  # the demo study's today
    assert (
        _leave(
            api, coordinator, code, kind="intervention", category="burden", withdrawn_on=str(on)
        ).status_code
        == 200
    )
    assert _leave(api, coordinator, code, kind="lost", category="moved").status_code == 200
    trail = api.client.get("/api/v1/audit?limit=1000", headers=bearer(api.admin_token))
    assert trail.status_code == 200, trail.text
    records = [
        r
        for r in trail.json()["items"]
        if r["action"] == "participant.withdrawn" and r["entity_id"] == code
    ]
    assert [r["changes"]["withdrawal_kind"]["new"] for r in records] == ["intervention", "lost"]
    assert records[1]["changes"]["withdrawal_kind"]["old"] == "intervention"
    assert records[1]["changes"]["withdrawal_category"]["new"] == "moved"
    assert records[1]["changes"]["status"] == {"old": "randomized", "new": "withdrawn"}
    assert records[0]["changes"]["intervention_stopped_on"]["new"] == str(on)
    shown = api.client.get(
        f"/api/v1/studies/{STUDY}/participants/{code}", headers=bearer(coordinator)
    ).json()
    # Leaving altogether later keeps the day the intervention stopped.
    assert (shown["withdrawal_kind"], shown["intervention_stopped_on"]) == ("lost", str(on))

    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        assert list(replay(session, study=study)) == []
    with db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE participants SET withdrawal_kind = 'follow_up' WHERE code = :c"),
            {"c": code},
        )
    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        found = list(replay(session, study=study))
    assert [(d.table, d.key) for d in found] == [("participants", code)]
