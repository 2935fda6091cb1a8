"""`trialdesk verify`: every allocation re-derived, the audit chain checked, tampering found."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from tests.helpers import bearer

runner = CliRunner()


def _verify(settings) -> tuple[int, str]:
    env = {"TRIALDESK_DATABASE_URL": settings.database_url}
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    result = runner.invoke(cli, ["verify", "--study", "peer-support"], env=env)
    return result.exit_code, result.output


def _allow_tampering(db, table: str) -> None:
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            for event in ("update", "delete"):
                connection.exec_driver_sql(f"DROP TRIGGER {table}_no_{event}")


def _randomize_some(api, n: int = 12) -> list[str]:
    coordinator = api.user("coordinator", "PHL", "PIT")
    codes = []
    for i in range(n):
        code = api.enroll(
            coordinator, site=("PHL", "PIT")[i % 2], diagnosis=("bipolar", "depressive")[i % 2]
        )
        assert api.randomize(coordinator, code).status_code == 200
        codes.append(code)
    return codes


def test_verify_passes_on_untouched_allocations_and_trail(settings, api):
    _randomize_some(api)
    code, output = _verify(settings)
    assert code == 0, output
    assert "12 allocations re-derived" in output


def test_verify_detects_a_tampered_allocation(settings, db, api):
    codes = _randomize_some(api)
    _allow_tampering(db, "allocations")
    with db.engine.begin() as connection:
        arm = connection.exec_driver_sql(
            "SELECT a.arm FROM allocations a JOIN participants p ON p.id = a.participant_id "
            f"WHERE p.code = '{codes[3]}'"
        ).scalar_one()
        other = "control" if arm != "control" else "listserv"
        connection.exec_driver_sql(
            f"UPDATE allocations SET arm = '{other}' WHERE participant_id = "
            f"(SELECT id FROM participants WHERE code = '{codes[3]}')"
        )
    code, output = _verify(settings)
    assert code == 1
    assert "does not match the re-derived sequence" in output


def test_verify_detects_a_deleted_allocation(settings, db, api):
    codes = _randomize_some(api)
    _allow_tampering(db, "allocations")
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "DELETE FROM allocations WHERE participant_id = "
            f"(SELECT id FROM participants WHERE code = '{codes[0]}')"
        )
    code, output = _verify(settings)
    assert code == 1
    assert "ALLOCATION" in output


def test_verify_detects_a_tampered_audit_record(settings, db, api):
    _randomize_some(api, 3)
    _allow_tampering(db, "audit_records")
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE audit_records SET actor = 'nobody@example.org' "
            "WHERE seq = (SELECT MIN(seq) FROM audit_records "
            "WHERE action = 'participant.randomized')"
        )
    code, output = _verify(settings)
    assert code == 1
    assert "content does not match its hash" in output


def test_verify_detects_a_removed_audit_record(settings, db, api):
    _randomize_some(api, 3)
    _allow_tampering(db, "audit_records")
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_records WHERE seq = 5")
    code, output = _verify(settings)
    assert code == 1
    assert "AUDIT record" in output


def test_verify_detects_a_secret_that_no_longer_matches_the_commitment(settings, db, api):
    _randomize_some(api, 3)
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE studies SET commitment = repeat('0', 64)"
            if connection.dialect.name == "postgresql"
            else "UPDATE studies SET commitment = printf('%064d', 0)"
        )
    code, output = _verify(settings)
    assert code == 1
    assert "commitment" in output


@pytest.mark.parametrize("reason", ["", "   "])
def test_unblinding_needs_a_reason(api, reason):
    code = _randomize_some(api, 1)[0]
    response = api.client.post(
        f"/api/v1/studies/peer-support/participants/{code}/unblind",
        json={"reason": reason},
        headers=bearer(api.admin_token),
    )
    assert response.status_code == 422


def test_unblinding_is_audited_with_its_reason(api):
    code = _randomize_some(api, 1)[0]
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


def test_the_whole_chain_shows_records_of_no_study_in_order(api):
    api.user("statistician", email="stat@example.org")
    trail = api.client.get("/api/v1/audit?limit=1000", headers=bearer(api.admin_token)).json()
    seqs = [r["seq"] for r in trail["items"]]
    assert seqs == list(range(1, len(seqs) + 1))
    created = [r for r in trail["items"] if r["action"] == "user.created"]
    assert any(r["changes"]["email"]["new"] == "stat@example.org" for r in created)
    for before, after in zip(trail["items"], trail["items"][1:], strict=False):
        assert after["prev_hash"] == before["hash"]
