"""Protocol deviations through the API: recorded by staff, proposed by the scheduler (a
survey done after its window closed), confirmed or dismissed, followed up in versions
that are only ever added; bounded inputs, site scope and roles."""

from __future__ import annotations

from datetime import date, timedelta

from app.scheduler.runner import run_pass
from tests.helpers import BASELINE_ANSWERS, STUDY, bearer
from tests.surveys.test_api import _shift_window

BASE = f"/api/v1/studies/{STUDY}"
DEVIATIONS = f"{BASE}/deviations"


def _today() -> date:
    """Today in the demo study's time zone (the service's clock is the database's)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    return datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date()


def _body(**overrides):  # type: ignore[no-untyped-def]
    body = {
        "category": "consent_error",
        "occurred_on": _today().isoformat(),
        "description": "Consent form version 0.9 signed; 1.0 was current.",
        "important": True,
        "corrective_action": "Re-consented on the current version.",
    }
    return body | overrides


def _record(api, token: str, code: str, **overrides):  # type: ignore[no-untyped-def]
    return api.client.post(
        f"{BASE}/participants/{code}/deviations", json=_body(**overrides), headers=bearer(token)
    )


def _version(api, token: str, deviation_id: int, body: dict):  # type: ignore[no-untyped-def]
    return api.client.post(
        f"{DEVIATIONS}/{deviation_id}/versions", json=body, headers=bearer(token)
    )


def _trail(api, entity: str) -> list[dict]:
    records = api.client.get(f"{BASE}/audit?limit=1000", headers=bearer(api.admin_token)).json()[
        "items"
    ]
    return [r for r in records if r["entity_id"] == entity]


def test_a_coordinator_records_a_deviation_and_its_follow_ups_are_kept_in_order(api):
    coordinator = api.user("coordinator", "PHL", email="pd-coordinator@example.org")
    code = api.enroll(coordinator)
    made = _record(api, coordinator, code)
    assert made.status_code == 201, made.text
    deviation = made.json()
    assert deviation["number"] == "PD-1" and deviation["participant"] == code
    assert (deviation["site"], deviation["state"], deviation["proposed"]) == (
        "PHL",
        "confirmed",
        False,
    )
    assert deviation["category"] == "consent_error" and deviation["important"] is True
    assert [v["kind"] for v in deviation["versions"]] == ["initial"]
    assert deviation["versions"][0]["recorded_by"] == "pd-coordinator@example.org"

    follow = _version(api, coordinator, deviation["id"], {"important": False, "note": "Minor."})
    assert follow.status_code == 201, follow.text
    note_only = _version(api, coordinator, deviation["id"], {"note": "IRB informed."})
    assert note_only.status_code == 201, note_only.text
    shown = api.client.get(f"{DEVIATIONS}/{deviation['id']}", headers=bearer(coordinator))
    assert shown.status_code == 200
    read = shown.json()
    assert [(v["number"], v["kind"], v["note"]) for v in read["versions"]] == [
        (1, "initial", None),
        (2, "follow_up", "Minor."),
        (3, "follow_up", "IRB informed."),
    ]
    assert read["versions"][1]["fields"] == {"important": False}  # what that version says
    assert read["important"] is False and read["version_count"] == 3
    assert read["description"] == deviation["description"]  # unchanged fields stay

    # Only a proposal is confirmed or dismissed; a follow-up must say something.
    for body, status in (
        ({"kind": "confirmation"}, 409),
        ({"kind": "dismissal", "note": "not one"}, 409),
        ({}, 422),
    ):
        refused = _version(api, coordinator, deviation["id"], body)
        assert refused.status_code == status, refused.text
    listed = api.client.get(DEVIATIONS, headers=bearer(coordinator)).json()
    assert [d["number"] for d in listed["items"]] == ["PD-1"] and listed["next"] is None
    assert "versions" not in listed["items"][0]
    actions = [r["action"] for r in _trail(api, "PD-1")]
    assert actions == ["deviation.recorded", "deviation.versioned", "deviation.versioned"]


def test_bad_input_is_422_naming_the_field_and_nothing_is_kept(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    tomorrow = (_today() + timedelta(days=1)).isoformat()
    before_screening = (_today() - timedelta(days=2)).isoformat()
    for overrides, loc in (
        ({"category": "late_lunch"}, ["body", "category"]),
        ({"description": "x" * 4001}, ["body", "description"]),
        ({"description": "   "}, ["body", "description"]),
        ({"corrective_action": "y" * 4001}, ["body", "corrective_action"]),
        ({"occurred_on": tomorrow}, ["body", "occurred_on"]),
        ({"occurred_on": before_screening}, ["body", "occurred_on"]),
        ({"occurred_on": 20261207}, ["body", "occurred_on"]),
        ({"occurred_on": "2026-12-07T10:00:00"}, ["body", "occurred_on"]),
        ({"important": "yes"}, ["body", "important"]),
        ({"state": "dismissed"}, ["body", "state"]),
    ):
        refused = _record(api, coordinator, code, **overrides)
        assert refused.status_code == 422, (overrides, refused.text)
        assert loc in [e["loc"] for e in refused.json()["errors"]], refused.text
    assert api.client.get(DEVIATIONS, headers=bearer(coordinator)).json()["items"] == []
    made = _record(api, coordinator, code).json()
    for body, loc in (
        ({"note": "n" * 4001}, ["body", "note"]),
        ({"kind": "closure", "note": "x"}, ["body", "kind"]),
        ({"occurred_on": tomorrow}, ["body", "occurred_on"]),
    ):
        refused = _version(api, coordinator, made["id"], body)
        assert refused.status_code == 422, refused.text
        assert loc in [e["loc"] for e in refused.json()["errors"]], refused.text
    after = api.client.get(f"{DEVIATIONS}/{made['id']}", headers=bearer(coordinator)).json()
    assert after["version_count"] == 1


def test_another_sites_participant_and_deviation_are_404_and_blind_roles_403(api):
    phl = api.user("coordinator", "PHL")
    pit = api.user("coordinator", "PIT")
    code = api.enroll(phl)
    made = _record(api, phl, code).json()
    assert _record(api, pit, code).status_code == 404
    assert api.client.get(f"{DEVIATIONS}/{made['id']}", headers=bearer(pit)).status_code == 404
    assert _version(api, pit, made["id"], {"note": "x"}).status_code == 404
    assert api.client.get(DEVIATIONS, headers=bearer(pit)).json()["items"] == []
    for missing in (f"{DEVIATIONS}/999999", f"{DEVIATIONS}/{2**63}"):
        assert api.client.get(missing, headers=bearer(phl)).status_code in (404, 422)
    assert api.client.get(f"{DEVIATIONS}/999999", headers=bearer(phl)).status_code == 404
    statistician = api.user("statistician")
    assert _record(api, statistician, code).status_code == 403
    assert api.client.get(DEVIATIONS, headers=bearer(statistician)).status_code == 403
    reviewer = api.user("safety_reviewer")
    assert api.client.get(f"{DEVIATIONS}/{made['id']}", headers=bearer(reviewer)).status_code == 200
    assert _record(api, reviewer, code).status_code == 403  # reads and reviews, records not
    member = api.user("dsmb_member")
    assert api.client.get(DEVIATIONS, headers=bearer(member)).status_code == 403


def _enter_late(api, db, token: str, code: str, *, interviewed_on: date) -> None:
    """The baseline's window moved 30 days back (closed 16 days ago), then entered by staff."""
    _shift_window(db, code, "baseline", days=-30)
    done = api.client.post(
        f"{BASE}/participants/{code}/surveys/baseline/submit",
        json={"answers": BASELINE_ANSWERS, "interviewed_on": interviewed_on.isoformat()},
        headers=bearer(token),
    )
    assert done.status_code == 200, done.text


def test_a_survey_done_after_its_window_is_proposed_once_then_confirmed_or_dismissed(api, db):
    coordinator = api.user("coordinator", "PHL")
    late, in_window, dismissed = (api.enroll(coordinator) for _ in range(3))
    _enter_late(api, db, coordinator, late, interviewed_on=_today())
    _enter_late(api, db, coordinator, dismissed, interviewed_on=_today() - timedelta(days=3))
    # Interviewed within the window, typed in today: late data entry, no deviation.
    _enter_late(api, db, coordinator, in_window, interviewed_on=_today() - timedelta(days=29))

    assert run_pass(db).proposed == 2
    assert run_pass(db).proposed == 0  # each finding once, however often it runs
    again = api.client.post(f"{DEVIATIONS}/propose", headers=bearer(coordinator))
    assert again.status_code == 200 and again.json() == {"proposed": 0}

    proposed = api.client.get(f"{DEVIATIONS}?state=proposed", headers=bearer(coordinator))
    items = {d["participant"]: d for d in proposed.json()["items"]}
    assert set(items) == {late, dismissed}
    first = items[late]
    assert (first["category"], first["occurred_on"], first["proposed"]) == (
        "outside_window",
        _today().isoformat(),
        True,
    )
    assert "Baseline survey" in first["description"]
    shown = api.client.get(f"{DEVIATIONS}/{first['id']}", headers=bearer(coordinator)).json()
    assert [(v["kind"], v["recorded_by"]) for v in shown["versions"]] == [("proposed", "system")]

    confirmed = _version(
        api, coordinator, first["id"], {"kind": "confirmation", "corrective_action": "Reminded."}
    )
    assert confirmed.status_code == 201, confirmed.text
    assert confirmed.json()["state"] == "confirmed"
    assert confirmed.json()["corrective_action"] == "Reminded."
    second = items[dismissed]["id"]
    no_note = _version(api, coordinator, second, {"kind": "dismissal"})
    assert no_note.status_code == 422
    assert no_note.json()["errors"][0]["loc"] == ["body", "note"]
    with_field = _version(
        api, coordinator, second, {"kind": "dismissal", "note": "x", "important": True}
    )
    assert with_field.status_code == 422
    follow_first = _version(api, coordinator, second, {"note": "looking"})
    assert follow_first.status_code == 409  # decide a proposal first
    gone = _version(
        api, coordinator, second, {"kind": "dismissal", "note": "Window extended by the PI."}
    )
    assert gone.status_code == 201 and gone.json()["state"] == "dismissed"
    twice = _version(api, coordinator, second, {"kind": "confirmation"})
    assert twice.status_code == 409
    assert run_pass(db).proposed == 0  # a dismissed proposal is not made again
    states = api.client.get(f"{DEVIATIONS}?participant={dismissed}", headers=bearer(coordinator))
    assert [d["state"] for d in states.json()["items"]] == ["dismissed"]
    actions = [r["action"] for r in _trail(api, items[dismissed]["number"])]
    assert actions == ["deviation.proposed", "deviation.versioned"]


def test_surveys_only_some_arms_have_are_not_proposed_where_a_reader_is_blind():
    from app.demo import demo_definition
    from app.safety.deviations import unproposable_timepoints
    from app.studies.definition import StudyDefinition

    document = demo_definition()
    document["schedule"].append(
        {
            "code": "group_check",
            "anchor": "randomization",
            "day": 30,
            "open_before": 0,
            "close_after": 7,
            "instruments": ["group_experience"],  # only the online-group arms have it
        }
    )
    open_label = StudyDefinition.model_validate(document)
    assert unproposable_timepoints(open_label) == frozenset()  # every reader sees arms
    document["blinding"]["arm_visible_to"] = ["admin", "unblinded_statistician"]
    blinded = StudyDefinition.model_validate(document)
    # month_4 differs by arm but every arm has it: proposed, naming it tells nothing.
    assert unproposable_timepoints(blinded) == {"group_check"}


def test_two_follow_ups_saved_at_once_are_both_kept_in_order(api):
    import threading

    coordinators = [api.user("coordinator", "PHL") for _ in range(2)]
    code = api.enroll(coordinators[0])
    made = _record(api, coordinators[0], code).json()
    start = threading.Barrier(2)
    answers: dict[int, int] = {}

    def follow_up(n: int) -> None:
        start.wait()
        answers[n] = _version(api, coordinators[n], made["id"], {"note": f"note {n}"}).status_code

    threads = [threading.Thread(target=follow_up, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {0: 201, 1: 201}
    read = api.client.get(f"{DEVIATIONS}/{made['id']}", headers=bearer(coordinators[0])).json()
    assert [v["number"] for v in read["versions"]] == [1, 2, 3]
    assert sorted(v["note"] for v in read["versions"][1:]) == ["note 0", "note 1"]
    assert read["version_count"] == 3
