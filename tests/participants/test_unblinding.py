"""Emergency unblinding: one participant's arm, for a recorded reason."""

from __future__ import annotations

import pytest

from tests.helpers import bearer


def _randomize_one(api) -> str:
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    assert api.randomize(coordinator, code).status_code == 200
    return code


@pytest.mark.parametrize("reason", ["", "   "])
def test_unblinding_needs_a_reason(api, reason):
    code = _randomize_one(api)
    response = api.client.post(
        f"/api/v1/studies/peer-support/participants/{code}/unblind",
        json={"reason": reason},
        headers=bearer(api.admin_token),
    )
    assert response.status_code == 422


def test_unblinding_is_audited_with_its_reason(api):
    code = _randomize_one(api)
    statistician = api.user("unblinded_statistician")
    response = api.client.post(
        f"/api/v1/studies/peer-support/participants/{code}/unblind",
        json={"reason": "serious adverse event, DMC request 7"},
        headers=bearer(statistician),
    )
    assert response.status_code == 200, response.text
    assert response.json()["arm"] in {"listserv", "bulletin_board", "control"}
    assert response.json()["arm_label"]
    trail = api.client.get(
        "/api/v1/studies/peer-support/audit?limit=1000", headers=bearer(api.admin_token)
    ).json()["items"]
    unblinded = [r for r in trail if r["action"] == "participant.unblinded"]
    assert len(unblinded) == 1
    assert unblinded[0]["entity_id"] == code
    assert unblinded[0]["reason"] == "serious adverse event, DMC request 7"
    assert unblinded[0]["actor"].startswith("unblinded_statistician-")
    # the trail never carries the arm itself
    assert response.json()["arm"] not in str(unblinded[0]["changes"])
