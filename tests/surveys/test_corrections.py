"""Corrections: a stored answer is never edited in place. `POST .../surveys/{timepoint}/
corrections` keeps the original, the new value, who, when and why; the survey's answers
and scores become the corrected ones, and a safety rule now met raises its alert."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers import BASELINE_ANSWERS, STUDY, bearer
from tests.test_verify import _verify

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"
REASON = "participant misheard the question; confirmed by phone"


def _url(code: str, timepoint: str = "baseline", what: str = "corrections") -> str:
    return f"{PARTICIPANTS}/{code}/surveys/{timepoint}" + (f"/{what}" if what else "")


def _completed(api, coordinator: str) -> str:
    code = api.enroll(coordinator)
    api.complete_survey(code)
    return code


def _correct(api, token: str, code: str, **body):
    return api.client.post(_url(code), json={"reason": REASON} | body, headers=bearer(token))


def _rows(db) -> int:
    with db.engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM answer_corrections")).scalar_one()


def _trail(api, code: str) -> list[dict]:
    records = api.client.get(
        f"/api/v1/studies/{STUDY}/audit?limit=1000", headers=bearer(api.admin_token)
    ).json()["items"]
    return [r for r in records if r["action"] == "survey.answer_corrected"]


def test_a_correction_keeps_the_original_and_the_survey_shows_the_current_answer(api, db):
    coordinator = api.user("coordinator", "PHL", email="corrector@example.org")
    code = _completed(api, coordinator)
    done = _correct(api, coordinator, code, item="who5_1", value=5)
    assert done.status_code == 201, done.text
    shown = api.client.get(_url(code, what=""), headers=bearer(coordinator)).json()
    assert done.json() == shown | {"alerts_raised": 0}
    assert shown["answers"]["who5_1"] == 5
    assert shown["scores"]["who5_raw"] == 17  # 15, with the item now 5 instead of 3
    [correction] = shown["corrections"]
    assert {k: correction[k] for k in ("item", "old", "new", "reason", "by")} == {
        "item": "who5_1",
        "old": 3,
        "new": 5,
        "reason": REASON,
        "by": "corrector@example.org",
    }
    [record] = _trail(api, code)
    assert record["entity_id"] == f"{code}:baseline" and record["reason"] == REASON
    assert record["changes"]["who5_1"] == {"old": 3, "new": 5}
    assert record["changes"]["_scores"]["new"]["who5_raw"] == 17
    again = _correct(api, coordinator, code, item="who5_1", value=3)  # back: both kept
    assert [(c["old"], c["new"]) for c in again.json()["corrections"]] == [(3, 5), (5, 3)]
    assert _rows(db) == 2


def test_an_optional_answer_may_be_taken_back_but_a_required_one_may_not(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = _completed(api, coordinator)
    refused = _correct(api, coordinator, code, item="phq9_1", value=None)
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["errors"]] == [["body", "value"]]
    assert _rows(db) == 0


def test_a_correction_that_meets_a_safety_rule_raises_its_alert_once(api):
    coordinator = api.user("coordinator", "PHL")
    code = _completed(api, coordinator)
    raised = _correct(api, coordinator, code, item="phq9_9", value=2)
    assert raised.status_code == 201 and raised.json()["alerts_raised"] == 1
    alerts = api.client.get(f"/api/v1/studies/{STUDY}/alerts", headers=bearer(coordinator))
    assert [a["participant"] for a in alerts.json()["items"]] == [code]
    # Met again by another value: the alert stands, no second one; taken back: it stays
    # until acknowledged.
    assert _correct(api, coordinator, code, item="phq9_9", value=3).json()["alerts_raised"] == 0
    assert _correct(api, coordinator, code, item="phq9_9", value=0).json()["alerts_raised"] == 0
    alerts = api.client.get(f"/api/v1/studies/{STUDY}/alerts", headers=bearer(coordinator))
    assert len(alerts.json()["items"]) == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"item": "who5_1", "value": 5, "reason": ""}, "reason"),
        ({"item": "who5_1", "value": 5, "reason": "   \t "}, "reason"),
        ({"item": "who5_1", "value": 5, "reason": "\u200b\u200b\u0301"}, "reason"),
        ({"item": "who5_1", "value": 5, "reason": "... 123 !!"}, "reason"),
        ({"item": "who5_1", "value": 5, "reason": "x" * 2001}, "reason"),
        ({"item": "who5_1", "value": 5, "reason": 12}, "reason"),
        ({"item": "who5_1", "value": 5}, "reason"),
        ({"item": "who5_1", "value": 99, "reason": REASON}, "value"),
        ({"item": "who5_1", "value": "5", "reason": REASON}, "value"),
        ({"item": "who5_1", "value": [5], "reason": REASON}, "value"),
        ({"item": "who5_1", "value": 3, "reason": REASON}, "value"),  # already the answer
        ({"item": "no_such_item", "value": 1, "reason": REASON}, "item"),
        ({"item": "w\u0000", "value": 1, "reason": REASON}, None),
        ({"item": "x" * 65, "value": 1, "reason": REASON}, "item"),
        ({"item": "who5_1", "reason": REASON}, "value"),
        ({"item": "who5_1", "value": 5, "reason": REASON, "by": "me"}, "by"),
    ],
)
def test_bad_corrections_are_422_naming_the_field_and_nothing_is_kept(
    module_api, module_db, body, field
):
    # One database for the cases (each refused, nothing kept): no correction is ever
    # stored there, so the table stays empty after every one of them.
    api, db = module_api, module_db
    coordinator = api.user("coordinator", "PHL")
    code = _completed(api, coordinator)
    refused = api.client.post(_url(code), json=body, headers=bearer(coordinator))
    assert refused.status_code == 422, refused.text
    if field is not None:
        assert ["body", field] in [e["loc"][:2] for e in refused.json()["errors"]], refused.text
    assert _rows(db) == 0 and _trail(api, code) == []


def test_only_a_completed_survey_is_corrected(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    refused = _correct(api, coordinator, code, item="who5_1", value=5)
    assert refused.status_code == 409 and "completed" in refused.json()["detail"]
    assert _rows(db) == 0


def test_who_may_correct_and_another_sites_participant_is_404(api, db):
    phl = api.user("coordinator", "PHL")
    pit = api.user("coordinator", "PIT")
    code = _completed(api, phl)
    assert _correct(api, pit, code, item="who5_1", value=5).status_code == 404
    assert _correct(api, api.user("statistician"), code, item="who5_1", value=5).status_code == 403
    assert _correct(api, phl, code, item="who5_1", value=5, reason=REASON).status_code == 201
    admin = _correct(api, api.admin_token, code, item="who5_1", value=4)
    assert admin.status_code == 201
    assert _rows(db) == 2


def test_corrections_replay_and_verify_stays_green(api, settings, db):
    coordinator = api.user("coordinator", "PHL")
    code = _completed(api, coordinator)
    assert _correct(api, coordinator, code, item="phq9_9", value=1).status_code == 201
    assert _correct(api, coordinator, code, item="who5_2", value=0).status_code == 201
    exit_code, output = _verify(settings)
    assert exit_code == 0, output
    # A correction row is never rewritten: the table refuses UPDATE and DELETE.
    with pytest.raises(sa.exc.DBAPIError), db.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM answer_corrections"))
    # The current scores changed behind the trail's back are reported.
    with db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE survey_instances SET scores = NULL WHERE participant_code = :c"),
            {"c": code},
        )
    exit_code, output = _verify(settings)
    assert exit_code == 1 and f"{code}:baseline" in output, output


def test_the_survey_of_a_withdrawn_participant_can_still_be_corrected(api):
    coordinator = api.user("coordinator", "PHL")
    code = _completed(api, coordinator)
    withdrawn = api.client.post(
        f"{PARTICIPANTS}/{code}/withdraw", json={"reason": "moved"}, headers=bearer(coordinator)
    )
    assert withdrawn.status_code == 200
    assert _correct(api, coordinator, code, item="who5_1", value=5).status_code == 201
    assert BASELINE_ANSWERS["who5_1"] == 3
