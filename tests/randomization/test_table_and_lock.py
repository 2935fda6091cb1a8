"""Allocation tables from an independent statistician, and database lock with reveal."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app.cli import app as cli
from app.demo import demo_definition
from app.randomization.blocks import ArmRatio, sequence
from app.randomization.models import AllocationTableRow
from tests.helpers import STUDY, bearer, enrollment

TABLE = (
    "stratum,sequence,arm\n"
    "site=PHL|diagnosis=bipolar,1,control\n"
    "site=PHL|diagnosis=bipolar,2,listserv\n"
    "site=PHL|diagnosis=bipolar,3,bulletin_board\n"
    "site=PHL|diagnosis=depressive,1,listserv\n"
)


@pytest.fixture
def table_study(api) -> str:
    admin = bearer(api.admin_token)
    definition = demo_definition() | {"slug": "table-trial"}
    definition["randomization"] = definition["randomization"] | {"method": "table"}
    del definition["randomization"]["block_sizes"]
    assert api.client.post("/api/v1/studies", json=definition, headers=admin).status_code == 201
    response = api.client.post(
        "/api/v1/studies/table-trial/sites", json={"code": "PHL", "name": "P"}, headers=admin
    )
    assert response.status_code == 201
    return "table-trial"


def _put_table(api, slug: str, text: str):
    return api.client.put(
        f"/api/v1/studies/{slug}/allocation-table",
        content=text,
        headers={**bearer(api.admin_token), "content-type": "text/csv"},
    )


def _verify(settings) -> tuple[int, str]:
    env = {"TRIALDESK_DATABASE_URL": settings.database_url}
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    result = CliRunner().invoke(cli, ["verify", "--study", "table-trial"], env=env)
    return result.exit_code, result.output


def test_a_table_study_cannot_start_without_its_table(api, table_study):
    response = api.client.post(
        f"/api/v1/studies/{table_study}/activate", headers=bearer(api.admin_token)
    )
    assert response.status_code == 409


def test_a_bad_table_is_refused_with_every_problem_located(api, table_study):
    text = (
        "stratum,sequence,arm\n"
        "site=PHL|diagnosis=bipolar,1,placebo\n"
        "diagnosis=bipolar|site=PHL,1,control\n"
        "site=PHL|diagnosis=flu,1,control\n"
        "site=PHL|diagnosis=depressive,2,control\n"
        "site=PHL|diagnosis=bipolar,x,control\n"
    )
    response = _put_table(api, table_study, text)
    assert response.status_code == 422
    locs = [tuple(e["loc"]) for e in response.json()["errors"]]
    assert ("body", "rows", 1, "arm") in locs
    assert ("body", "rows", 2, "stratum") in locs
    assert ("body", "rows", 3, "stratum") in locs
    assert ("body", "rows", 5, "sequence") in locs
    assert ("body", "rows") in locs  # depressive starts at 2
    missing_column = _put_table(
        api, table_study, "stratum,arm\nsite=PHL|diagnosis=bipolar,control\n"
    )
    assert missing_column.json()["errors"][0]["loc"] == ["body", "header"]


def test_allocations_follow_the_table_and_verify_checks_them(settings, db, api, table_study):
    loaded = _put_table(api, table_study, TABLE)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["rows"] == 4 and loaded.json()["strata"] == 2
    admin = bearer(api.admin_token)
    assert (
        api.client.post(f"/api/v1/studies/{table_study}/activate", headers=admin).status_code == 200
    )
    assert _put_table(api, table_study, TABLE).status_code == 409  # fixed once enrolling
    coordinator = api.user("coordinator", "PHL", study=table_study)
    arms = []
    for _ in range(3):
        code = api.enroll(coordinator, study=table_study)
        arms.append(api.randomize(coordinator, code, study=table_study).json()["arm"])
    assert arms == ["control", "listserv", "bulletin_board"]
    fourth = api.enroll(coordinator, study=table_study)
    exhausted = api.randomize(coordinator, fourth, study=table_study)
    assert exhausted.status_code == 409
    assert exhausted.json()["type"].endswith("allocation-table-exhausted")
    assert (
        api.client.get(
            f"/api/v1/studies/{table_study}/participants/{fourth}", headers=bearer(coordinator)
        ).json()["status"]
        == "enrolled"
    )
    ledger = api.client.get(f"/api/v1/studies/{table_study}/allocations", headers=admin).json()
    assert [(a["sequence"], a["block"]) for a in ledger["items"]] == [
        (1, None),
        (2, None),
        (3, None),
    ]
    code, output = _verify(settings)
    assert code == 0, output
    with db.engine.begin() as connection:  # arms are sealed: changed by one with the key
        connection.execute(
            sa.update(AllocationTableRow)
            .where(
                AllocationTableRow.sequence == 2,
                AllocationTableRow.stratum == "site=PHL|diagnosis=bipolar",
            )
            .values(arm="control")
        )
    code, output = _verify(settings)
    assert code == 1
    assert "differs from the one recorded" in output


def test_lock_reveals_a_secret_that_reproduces_every_allocation(api):
    admin = bearer(api.admin_token)
    coordinator = api.user("coordinator", "PHL", "PIT")
    for i in range(10):
        code = api.enroll(coordinator, site=("PHL", "PIT")[i % 2], diagnosis="bipolar")
        assert api.randomize(coordinator, code).status_code == 200
    study = api.client.get(f"/api/v1/studies/{STUDY}", headers=admin).json()
    assert study["secret"] is None
    locked = api.client.post(f"/api/v1/studies/{STUDY}/lock", headers=admin)
    assert locked.status_code == 200, locked.text
    secret = bytes.fromhex(locked.json()["secret"])
    assert hashlib.sha256(secret + STUDY.encode()).hexdigest() == study["commitment"]
    ledger = api.client.get(f"/api/v1/studies/{STUDY}/allocations", headers=admin).json()["items"]
    arms = [ArmRatio(a["code"], a["ratio"]) for a in study["arms"]]
    for key in {a["stratum"] for a in ledger}:
        rows = [a for a in ledger if a["stratum"] == key]
        derived = sequence(secret=secret, stratum=key, count=len(rows), sizes=[3, 6], arms=arms)
        assert [(a["block"], a["position"], a["arm"]) for a in rows] == [
            (s.block, s.position, s.arm) for s in derived
        ]
    assert (
        api.client.get(f"/api/v1/studies/{STUDY}", headers=admin).json()["secret"] == secret.hex()
    )
    assert (
        api.client.post(
            f"/api/v1/studies/{STUDY}/participants", json=enrollment(), headers=bearer(coordinator)
        ).status_code
        == 409
    )
    withdraw = api.client.post(
        f"/api/v1/studies/{STUDY}/participants/{ledger[0]['participant']}/withdraw",
        json={"reason": "late"},
        headers=bearer(coordinator),
    )
    assert withdraw.status_code == 409
    trail = api.client.get(f"/api/v1/studies/{STUDY}/audit?limit=1000", headers=admin).json()
    assert trail["items"][-1]["action"] == "study.locked"
    assert api.client.post(f"/api/v1/studies/{STUDY}/lock", headers=admin).status_code == 409
