from pathlib import Path

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


def test_a_started_app_has_frozen_its_start_up_objects(api):
    # The app is started (the `api` fixture runs its lifespan): what start-up made is out
    # of the garbage collector's sight, so full collections stay short (benchmarks/console.py).
    import gc

    from app.main import freeze_start_up_objects

    frozen = gc.get_freeze_count()
    assert frozen > 10_000
    freeze_start_up_objects()  # once per process: a second app start freezes nothing more
    assert gc.get_freeze_count() == frozen


def test_no_test_overrides_dependencies():
    """tests/shared_routes.py lets applications share built route handlers, whose one
    link to their application is `dependency_overrides`: no test may use it."""
    here = Path(__file__).parent
    users = [
        p.name
        for p in here.rglob("*.py")
        if p.name not in {"shared_routes.py", "test_main.py"}
        and "dependency_overrides" in p.read_text(encoding="utf-8")
    ]
    assert users == []
