"""Surveys through their personal links (JSON), and what coordinators see of them."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import sqlalchemy as sa

from tests.helpers import BASELINE_ANSWERS, STUDY, bearer

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _survey(api, token: str):
    return api.client.get(f"/api/v1/surveys/{token}")


def _shift_window(db, code: str, timepoint: str, *, days: int) -> None:
    """Move a survey's window `days` days (into the past when negative)."""
    with db.engine.begin() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT id, opens_on, closes_on FROM survey_instances "
                "WHERE participant_code = :c AND timepoint = :t"
            ),
            {"c": code, "t": timepoint},
        ).all()
        for row_id, opens, closes in rows:
            opens = date.fromisoformat(str(opens)) + timedelta(days=days)
            closes = date.fromisoformat(str(closes)) + timedelta(days=days)
            connection.execute(
                sa.text("UPDATE survey_instances SET opens_on = :o, closes_on = :c WHERE id = :i"),
                {"o": opens, "c": closes, "i": row_id},
            )


def test_enrollment_schedules_the_baseline_and_randomization_the_follow_ups(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    shown = api.client.get(f"{PARTICIPANTS}/{code}", headers=bearer(coordinator)).json()
    assert [(s["timepoint"], s["status"]) for s in shown["surveys"]] == [("baseline", "open")]
    assert shown["surveys"][0]["link"].startswith("http://testserver/s/")
    assert shown["surveys"][0]["closes_on"] > shown["surveys"][0]["opens_on"]
    assert api.randomize(coordinator, code).status_code == 200
    after = api.client.get(f"{PARTICIPANTS}/{code}", headers=bearer(coordinator)).json()
    lines = {s["timepoint"]: s for s in after["surveys"]}
    assert [lines[t]["status"] for t in ("baseline", "month_4", "month_12")] == [
        "completed",
        "scheduled",
        "scheduled",
    ]
    assert lines["month_4"]["link"] is None  # a link is shown only while the survey is open


def test_randomizing_before_the_baseline_is_complete_is_409_and_takes_no_slot(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    refused = api.randomize(coordinator, code, complete_baseline=False)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("timepoint-not-completed")
    assert "baseline" in refused.json()["detail"]
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM allocations")).scalar_one() == 0
        assert connection.execute(sa.text("SELECT COUNT(*) FROM strata")).scalar_one() == 0


def test_a_link_shows_only_its_own_survey_saves_and_then_submits(api):
    coordinator = api.user("coordinator", "PHL")
    first, second = api.enroll(coordinator), api.enroll(coordinator, name="Other Person")
    token = api.survey_token(first)
    read = _survey(api, token).json()
    assert read["timepoint"] == "baseline" and read["status"] == "open"
    assert [i["code"] for i in read["instruments"]] == ["who5", "phq9"]
    text = _survey(api, token).text
    for private in (first, second, "Pat Doe", "Other Person", "pat@example.org", "5550100"):
        assert private not in text
    saved = api.client.put(f"/api/v1/surveys/{token}/answers", json={"who5_1": 4})
    assert saved.status_code == 200 and saved.json()["answers"] == {"who5_1": 4}
    assert _survey(api, api.survey_token(second)).json()["answers"] == {}
    done = api.client.post(f"/api/v1/surveys/{token}/submit", json={"answers": BASELINE_ANSWERS})
    assert done.json() == {
        "status": "completed",
        "support_text": done.json()["support_text"],
        "crisis_text": None,
    }
    after = _survey(api, token)  # done: the link shows the answers no more
    assert after.status_code == 409 and "who5_1" not in after.text
    assert after.json()["type"].endswith("survey-completed")
    again = api.client.post(f"/api/v1/surveys/{token}/submit", json={"answers": {}})
    assert again.status_code == 409
    assert api.client.put(f"/api/v1/surveys/{token}/answers", json={}).status_code == 409


def test_wrong_or_missing_answers_are_422_each_named_and_nothing_is_kept(api):
    token = api.survey_token(api.enroll(api.user("coordinator", "PHL")))
    wrong = api.client.put(
        f"/api/v1/surveys/{token}/answers", json={"who5_1": 9, "who5_2": "x", "who5_3": 2}
    )
    assert wrong.status_code == 422
    assert {tuple(e["loc"]) for e in wrong.json()["errors"]} == {
        ("body", "who5_1"),
        ("body", "who5_2"),
    }
    assert _survey(api, token).json()["answers"] == {}  # not even the valid one
    incomplete = api.client.post(f"/api/v1/surveys/{token}/submit", json={"answers": {"who5_1": 3}})
    assert incomplete.status_code == 422
    assert len(incomplete.json()["errors"]) == 4 + 9  # every required item left
    assert _survey(api, token).json()["status"] == "open"


def test_unknown_links_are_404_and_guessers_are_slowed_down(api):
    assert _survey(api, "x" * 43).status_code == 404
    assert _survey(api, "short").status_code == 404
    statuses = [_survey(api, f"{i:043d}").status_code for i in range(25)]
    assert 429 in statuses and statuses[:18] == [404] * 18
    slowed = _survey(api, "0" * 43)
    assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) >= 1


def test_a_reissued_link_replaces_the_old_one_which_answers_410(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    old = api.survey_token(code)
    assert api.survey_token(code) == old  # reading the participant does not change it
    reissued = api.client.post(
        f"{PARTICIPANTS}/{code}/surveys/baseline/reissue", headers=bearer(coordinator)
    )
    assert reissued.status_code == 200
    new = reissued.json()["link"].rsplit("/", 1)[1]
    assert new != old and api.survey_token(code) == new
    assert _survey(api, old).status_code == 410
    assert _survey(api, new).status_code == 200


def test_withdrawal_cancels_open_and_scheduled_surveys_and_their_links(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    token = api.survey_token(code)
    api.client.post(
        f"{PARTICIPANTS}/{code}/withdraw", json={"reason": "moved"}, headers=bearer(coordinator)
    )
    assert api.survey_status(code) == "cancelled"
    assert _survey(api, token).status_code == 410


def test_a_survey_not_open_yet_is_409_and_a_closed_one_410(api, db):
    coordinator = api.user("coordinator", "PHL")
    later, closed = api.enroll(coordinator), api.enroll(coordinator)
    token_later, token_closed = api.survey_token(later), api.survey_token(closed)
    _shift_window(db, later, "baseline", days=5)
    _shift_window(db, closed, "baseline", days=-30)
    assert _survey(api, token_later).status_code == 409
    assert _survey(api, token_closed).status_code == 410
    assert _survey(api, token_closed).json()["type"].endswith("survey-closed")
    assert api.survey_status(closed) == "missed"


def test_the_database_and_the_logs_hold_no_raw_token(api, db):
    handler_logs: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_logs.append(self.format(record) + str(vars(record)))

    keeper = Keep()
    logging.getLogger("trialdesk").addHandler(keeper)
    try:
        token = api.survey_token(api.enroll(api.user("coordinator", "PHL")))
        _survey(api, token)
        api.client.put(f"/api/v1/surveys/{token}/answers", json={"who5_1": 1})
        for near_miss in (f"/s/{token}/", f"/s/{token}/x", f"/api/v1/surveys/{token}/answerz"):
            assert api.client.get(near_miss, follow_redirects=False).status_code in (307, 404, 405)
    finally:
        logging.getLogger("trialdesk").removeHandler(keeper)
    assert handler_logs and not any(token in line for line in handler_logs)
    with db.engine.connect() as connection:
        for table in ("survey_instances", "audit_records", "outbox_messages", "idempotency_keys"):
            rows = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
            assert token not in str(rows), table


def test_the_worklist_shows_open_overdue_and_missed_surveys_of_my_sites(api, db):
    phl, pit = api.user("coordinator", "PHL"), api.user("coordinator", "PIT")
    fresh, late, gone = (api.enroll(phl) for _ in range(3))
    elsewhere = api.enroll(pit, site="PIT")
    _shift_window(db, late, "baseline", days=-8)  # open, past the reminder of day 7
    _shift_window(db, gone, "baseline", days=-20)

    def codes(token: str, status: str | None) -> set[str]:
        query = f"?status={status}" if status else ""
        page = api.client.get(f"/api/v1/studies/{STUDY}/schedule{query}", headers=bearer(token))
        assert page.status_code == 200, page.text
        return {item["participant"] for item in page.json()["items"]}

    assert codes(phl, "open") == {fresh, late}
    assert codes(phl, "overdue") == {late}
    assert codes(phl, "missed") == {gone}
    assert codes(pit, None) == {elsewhere}
    assert elsewhere in codes(api.admin_token, "open")


def test_a_safety_alert_is_listed_until_acknowledged_with_a_note(api):
    phl, pit = api.user("coordinator", "PHL"), api.user("coordinator", "PIT")
    code = api.enroll(phl)
    done = api.complete_survey(code, answers=BASELINE_ANSWERS | {"phq9_9": 1})
    assert done.json()["crisis_text"] and "988" in done.json()["crisis_text"]
    alerts = api.client.get(f"/api/v1/studies/{STUDY}/alerts", headers=bearer(phl)).json()["items"]
    assert [(a["participant"], a["rule"]) for a in alerts] == [(code, "phq9_self_harm")]
    assert (
        api.client.get(f"/api/v1/studies/{STUDY}/alerts", headers=bearer(pit)).json()["items"] == []
    )
    url = f"/api/v1/studies/{STUDY}/alerts/{alerts[0]['id']}/acknowledge"
    assert (
        api.client.post(
            url, json={"outcome": "no_event", "note": "x"}, headers=bearer(pit)
        ).status_code
        == 404
    )
    assert (
        api.client.post(
            url, json={"outcome": "no_event", "note": ""}, headers=bearer(phl)
        ).status_code
        == 422
    )
    ack = api.client.post(
        url, json={"outcome": "no_event", "note": "called; safe at home"}, headers=bearer(phl)
    )
    assert ack.status_code == 200 and ack.json()["note"] == "called; safe at home"
    assert (
        api.client.get(f"/api/v1/studies/{STUDY}/alerts", headers=bearer(phl)).json()["items"] == []
    )
    trail = api.client.get(
        f"/api/v1/studies/{STUDY}/audit?limit=1000", headers=bearer(api.admin_token)
    )
    actions = [r["action"] for r in trail.json()["items"]]
    assert "alert.raised" in actions and "alert.acknowledged" in actions
    assert "survey.submitted" in actions


def test_after_withdrawal_even_a_completed_surveys_link_is_gone(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    token = api.survey_token(code)
    api.complete_survey(code)
    withdrawn = api.client.post(
        f"{PARTICIPANTS}/{code}/withdraw", json={"reason": "asked"}, headers=bearer(coordinator)
    )
    assert withdrawn.status_code == 200
    for response in (_survey(api, token), api.client.get(f"/s/{token}")):
        assert response.status_code == 410
        assert "who5_1" not in response.text
    shown = api.client.get(f"{PARTICIPANTS}/{code}", headers=bearer(coordinator)).json()
    assert shown["surveys"][0]["status"] == "completed"  # kept for the analysis
