"""`trialdesk verify`: every allocation re-derived, the audit chain checked, tampering found."""

from __future__ import annotations

import sqlalchemy as sa
from typer.testing import CliRunner

from app.cli import app as cli
from app.randomization.models import Allocation

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
    with db.engine.begin() as connection:  # arms are sealed: changed by one with the key
        victim = Allocation.participant_code == codes[3]
        arm = connection.execute(sa.select(Allocation.arm).where(victim)).scalar_one()
        other = "control" if arm != "control" else "listserv"
        connection.execute(sa.update(Allocation).where(victim).values(arm=other))
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
