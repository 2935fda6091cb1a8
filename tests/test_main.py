from tests.helpers import bearer


def test_coordinator_enrolls_and_randomizes_a_participant(api):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    response = api.randomize(coordinator, code)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "randomized"
    assert body["stratum"] == "site=PHL|diagnosis=bipolar"
    assert body["arm"] in {"listserv", "bulletin_board", "control"}
    again = api.client.get(
        f"/api/v1/studies/peer-support/participants/{code}", headers=bearer(coordinator)
    )
    assert again.json()["arm"] == body["arm"]
