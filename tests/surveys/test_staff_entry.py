"""Staff data entry: a coordinator enters a participant's survey in a phone interview
(`mode: staff`, who, the interview's date, whether the assessor was blind), through
`PUT/POST .../participants/{code}/surveys/{timepoint}/answers|submit`; and what
`GET .../surveys/{timepoint}` shows of a survey."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.helpers import BASELINE_ANSWERS, STUDY, bearer, study_today
from tests.surveys.test_api import _shift_window

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"
# Interviews are bounded by the study's today (America/New_York), which between midnight
# UTC and New York's is the machine's yesterday: asked at each use (`_today()`), and put
# into parametrized bodies for the marker TODAY when the test runs, not when collected.
TODAY = "<the study's today>"


def _today() -> str:
    return study_today().isoformat()


def _dated(body: dict) -> dict:
    return {k: _today() if v == TODAY else v for k, v in body.items()}


def _url(code: str, timepoint: str = "baseline", what: str = "") -> str:
    return f"{PARTICIPANTS}/{code}/surveys/{timepoint}" + (f"/{what}" if what else "")


def _trail(api, code: str, timepoint: str = "baseline") -> list[dict]:
    records = api.client.get(
        f"/api/v1/studies/{STUDY}/audit?limit=1000", headers=bearer(api.admin_token)
    ).json()["items"]
    return [r for r in records if r["entity_id"] == f"{code}:{timepoint}"]


def _stored(db, code: str, timepoint: str = "baseline") -> tuple:
    with db.engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT mode, entered_by, interviewed_on, assessor_blind, completed_at "
                "FROM survey_instances WHERE participant_code = :c AND timepoint = :t"
            ),
            {"c": code, "t": timepoint},
        ).one()


def test_a_coordinator_enters_a_baseline_by_phone_and_it_is_recorded_as_staff(api, db):
    coordinator = api.user("coordinator", "PHL", email="interviewer@example.org")
    code = api.enroll(coordinator)
    token = api.survey_token(code)
    part = {f"who5_{i}": 3 for i in range(1, 6)}
    saved = api.client.put(
        _url(code, what="answers"),
        json={"answers": part, "interviewed_on": _today()},
        headers=bearer(coordinator),
    )
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert (body["status"], body["mode"], body["entered_by"]) == (
        "open",
        "staff",
        "interviewer@example.org",
    )
    assert body["answers"] == part and body["scores"] is None  # the staff's own draft
    rest = {k: v for k, v in BASELINE_ANSWERS.items() if k not in part}
    done = api.client.post(
        _url(code, what="submit"), json={"answers": rest}, headers=bearer(coordinator)
    )
    assert done.status_code == 200, done.text
    shown = api.client.get(_url(code), headers=bearer(coordinator)).json()
    assert shown == done.json() | {"alerts_raised": 0}
    assert shown["status"] == "completed" and shown["mode"] == "staff"
    assert shown["interviewed_on"] == _today()
    assert shown["assessor_blind"] is False  # demo coordinators see arms
    assert shown["answers"] == BASELINE_ANSWERS
    assert shown["scores"] == {"who5_raw": 15, "phq9_total": 8}
    assert shown["instruments"] == ["who5", "phq9"] and shown["corrections"] == []
    assert api.client.get(f"/api/v1/surveys/{token}").status_code == 409  # completed
    mode, entered_by, interviewed_on, blind, completed = _stored(db, code)
    assert (mode, str(interviewed_on)[:10], bool(blind)) == ("staff", _today(), False)
    assert entered_by is not None and completed is not None
    saved_rec, submitted = _trail(api, code)
    assert saved_rec["action"] == "survey.saved" and submitted["action"] == "survey.submitted"
    assert submitted["actor"] == "interviewer@example.org"
    assert submitted["changes"]["_mode"]["new"] == "staff"
    assert saved_rec["changes"]["_interviewed_on"]["new"] == _today()


def test_the_interview_date_is_required_to_submit_and_bounded_and_nothing_is_kept(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    url = _url(code, what="submit")
    missing = api.client.post(url, json={"answers": BASELINE_ANSWERS}, headers=bearer(coordinator))
    assert missing.status_code == 422
    assert [e["loc"] for e in missing.json()["errors"]] == [["body", "interviewed_on"]]
    tomorrow = (study_today() + timedelta(days=1)).isoformat()
    before = (study_today() - timedelta(days=1)).isoformat()  # the baseline opened today
    for day in (tomorrow, before):
        refused = api.client.post(
            url,
            json={"answers": BASELINE_ANSWERS, "interviewed_on": day},
            headers=bearer(coordinator),
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["loc"] == ["body", "interviewed_on"]
    assert _stored(db, code)[0] == "self" and api.survey_status(code) == "open"
    assert _trail(api, code) == []


@pytest.mark.parametrize(
    "body, where",
    [
        ({"answers": {"who5_1": "three"}, "interviewed_on": TODAY}, ["body", "answers", "who5_1"]),
        ({"answers": {"x" * 65: 1}}, ["body", "answers", "x" * 65, "[key]"]),
        ({"answers": {"no_such_\u202e\u0000item": 1}}, None),
        ({"answers": {f"i{n}": 1 for n in range(1001)}}, ["body", "answers"]),
        ({"answers": [1, 2]}, ["body", "answers"]),
        ({"answers": {}, "interviewed_on": 20261207}, ["body", "interviewed_on"]),
        ({"answers": {}, "interviewed_on": "07/12/2026"}, ["body", "interviewed_on"]),
        ({"answers": {}, "assessor_blind": "yes"}, ["body", "assessor_blind"]),
        ({"answers": {}, "assessor_blind": 1}, ["body", "assessor_blind"]),
        ({"answers": {}, "mode": "self"}, ["body", "mode"]),
        ({"answers": {"who5_1": 10**400}}, None),
    ],
)
def test_bad_bodies_are_422_naming_the_field_and_nothing_is_kept(
    module_api, module_db, body, where
):
    # One database for the cases: each enrolls its own participant and stores nothing.
    api, db, body = module_api, module_db, _dated(body)
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    for verb, what in (("PUT", "answers"), ("POST", "submit")):
        refused = api.client.request(
            verb, _url(code, what=what), json=body, headers=bearer(coordinator)
        )
        assert refused.status_code == 422, refused.text
        if where is not None:
            assert where in [e["loc"] for e in refused.json()["errors"]], refused.text
    assert _stored(db, code)[0] == "self" and _trail(api, code) == []


def test_staff_may_enter_a_missed_survey_late_but_not_one_not_open_yet_or_completed(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    _shift_window(db, code, "baseline", days=-30)  # closed two weeks ago: missed
    assert api.survey_status(code) == "missed"
    opened = (study_today() - timedelta(days=30)).isoformat()
    late = api.client.post(
        _url(code, what="submit"),
        json={"answers": BASELINE_ANSWERS, "interviewed_on": opened, "assessor_blind": True},
        headers=bearer(coordinator),
    )
    assert late.status_code == 200, late.text
    assert (late.json()["status"], late.json()["assessor_blind"]) == ("completed", True)
    again = api.client.post(
        _url(code, what="submit"),
        json={"answers": BASELINE_ANSWERS, "interviewed_on": _today()},
        headers=bearer(coordinator),
    )
    assert again.status_code == 409 and "correct" in again.json()["detail"]
    assert api.randomize(coordinator, code).status_code == 200
    early = api.client.put(
        _url(code, "month_4", "answers"), json={"answers": {}}, headers=bearer(coordinator)
    )
    assert early.status_code == 409 and "opens on" in early.json()["detail"]


def test_a_missed_survey_entered_after_a_withdrawal_is_dated_before_it(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    _shift_window(db, code, "baseline", days=-30)  # missed: still enterable after leaving
    left = api.client.post(
        f"{PARTICIPANTS}/{code}/withdraw", json={"reason": "moved"}, headers=bearer(coordinator)
    )
    assert left.status_code == 200, left.text
    left_on = study_today() - timedelta(days=10)
    with db.engine.begin() as connection:  # as if recorded ten days ago
        connection.execute(
            sa.text("UPDATE participants SET withdrawn_on = :d WHERE code = :c"),
            {"d": left_on, "c": code},
        )
    for day in (left_on + timedelta(days=1), study_today()):
        after = api.client.post(
            _url(code, what="submit"),
            json={"answers": BASELINE_ANSWERS, "interviewed_on": day.isoformat()},
            headers=bearer(coordinator),
        )
        assert after.status_code == 422, after.text
        assert "left the study" in after.text and "interviewed_on" in after.text
        assert _stored(db, code)[4] is None  # nothing kept: not completed
    before = api.client.post(
        _url(code, what="submit"),
        json={"answers": BASELINE_ANSWERS, "interviewed_on": left_on.isoformat()},
        headers=bearer(coordinator),
    )
    assert before.status_code == 200, before.text


def test_a_withdrawn_participants_cancelled_survey_cannot_be_entered(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    withdrawn = api.client.post(
        f"{PARTICIPANTS}/{code}/withdraw", json={"reason": "asked"}, headers=bearer(coordinator)
    )
    assert withdrawn.status_code == 200
    refused = api.client.post(
        _url(code, what="submit"),
        json={"answers": BASELINE_ANSWERS, "interviewed_on": _today()},
        headers=bearer(coordinator),
    )
    assert refused.status_code == 409 and "cancelled" in refused.json()["detail"]


def test_a_staff_submission_raises_the_safety_alert_as_the_link_does(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    done = api.client.post(
        _url(code, what="submit"),
        json={"answers": BASELINE_ANSWERS | {"phq9_9": 2}, "interviewed_on": _today()},
        headers=bearer(coordinator),
    )
    assert done.status_code == 200 and done.json()["alerts_raised"] == 1
    alerts = api.client.get(f"/api/v1/studies/{STUDY}/alerts", headers=bearer(coordinator))
    assert [a["participant"] for a in alerts.json()["items"]] == [code]


def test_a_participants_own_draft_is_not_shown_and_their_submission_makes_it_self(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    token = api.survey_token(code)
    assert api.client.put(f"/api/v1/surveys/{token}/answers", json={"who5_1": 4}).is_success
    shown = api.client.get(_url(code), headers=bearer(coordinator)).json()
    assert (shown["mode"], shown["answers"], shown["entered_by"]) == ("self", None, None)
    # Staff start the interview; the participant then finishes through the link: the
    # survey is theirs (mode self), with every answer kept.
    staff = api.client.put(
        _url(code, what="answers"),
        json={"answers": {"who5_2": 1}, "interviewed_on": _today()},
        headers=bearer(coordinator),
    )
    assert staff.json()["answers"] == {"who5_1": 4, "who5_2": 1}
    rest = {k: v for k, v in BASELINE_ANSWERS.items() if k not in ("who5_1", "who5_2")}
    assert api.client.post(f"/api/v1/surveys/{token}/submit", json={"answers": rest}).is_success
    assert _stored(db, code)[:4] == ("self", None, None, None)
    shown = api.client.get(_url(code), headers=bearer(coordinator)).json()
    assert shown["answers"] == BASELINE_ANSWERS | {"who5_1": 4, "who5_2": 1}


def test_a_null_answer_takes_back_one_staff_kept(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    url = _url(code, what="answers")
    api.client.put(url, json={"answers": {"who5_1": 4, "who5_2": 1}}, headers=bearer(coordinator))
    kept = api.client.put(url, json={"answers": {"who5_1": None}}, headers=bearer(coordinator))
    assert kept.json()["answers"] == {"who5_2": 1}
    # On submission too: the saved answer to a required item taken back is missing.
    refused = api.client.post(
        _url(code, what="submit"),
        json={"answers": BASELINE_ANSWERS | {"who5_2": None}, "interviewed_on": _today()},
        headers=bearer(coordinator),
    )
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["errors"]] == [["body", "answers", "who5_2"]]
    shown = api.client.get(_url(code), headers=bearer(coordinator)).json()
    assert (shown["status"], shown["answers"]) == ("open", {"who5_2": 1})  # nothing kept


def test_who_may_enter_and_read_and_another_sites_participant_is_404(api):
    phl = api.user("coordinator", "PHL")
    pit = api.user("coordinator", "PIT")
    statistician = api.user("statistician")
    code = api.enroll(phl)
    body = {"answers": BASELINE_ANSWERS, "interviewed_on": _today()}
    other = api.client.post(_url(code, what="submit"), json=body, headers=bearer(pit))
    unknown = api.client.post(_url("PS-PHL-9999", what="submit"), json=body, headers=bearer(phl))
    assert other.status_code == unknown.status_code == 404
    assert other.json()["title"] == unknown.json()["title"]
    assert api.client.get(_url(code), headers=bearer(pit)).status_code == 404
    assert api.client.get(_url(code), headers=bearer(statistician)).status_code == 403
    assert (
        api.client.post(_url(code, what="submit"), json=body, headers=bearer(statistician))
    ).status_code == 403
    no_such = api.client.get(_url(code, "no_such_timepoint"), headers=bearer(phl))
    assert no_such.status_code == 404 and "no survey" in no_such.json()["detail"]
    assert api.client.post(_url(code, what="submit"), json=body, headers=bearer(phl)).is_success


def test_a_staff_entered_survey_replays_and_verify_stays_green(api, settings):
    from tests.test_verify import _verify

    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    api.client.put(
        _url(code, what="answers"),
        json={"answers": {"who5_1": 1}, "interviewed_on": _today(), "assessor_blind": True},
        headers=bearer(coordinator),
    )
    done = api.client.post(
        _url(code, what="submit"), json={"answers": BASELINE_ANSWERS}, headers=bearer(coordinator)
    )
    assert done.status_code == 200, done.text
    assert done.json()["assessor_blind"] is True  # kept from the save
    exit_code, output = _verify(settings)
    assert exit_code == 0, output
