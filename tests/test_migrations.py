"""Every schema change is an Alembic revision, and every revision goes both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import alembic_config
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import pseudonym
from tests import pg


@pytest.fixture
def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_template")  # skips or fails as the PostgreSQL policy says
    name = pg.create_database("trialdesk_mig")
    yield pg.database_url(name)
    pg.drop_database(name)


def _tables(url: str) -> set[str]:
    engine = make_engine(Settings(database_url=url, secret_key="x" * 32))
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_every_revision_upgrades_downgrades_and_upgrades_again(empty_url):
    config = alembic_config(empty_url)
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    assert revisions, "no migrations found"
    for revision in revisions:
        command.upgrade(config, revision.revision)
        command.downgrade(config, revision.down_revision or "base")
        command.upgrade(config, revision.revision)
    assert "allocations" in _tables(empty_url)
    command.downgrade(config, "base")
    assert _tables(empty_url) == set()


def test_models_match_the_migrations(empty_url):
    config = alembic_config(empty_url)
    command.upgrade(config, "head")
    command.check(config)  # raises when the models need a revision the migrations lack


def test_allocations_and_audit_records_refuse_update_and_delete(settings, db, api):
    code = api.enroll(api.user("coordinator", "PHL"))
    assert api.randomize(api.admin_token, code).status_code == 200
    for statement in (
        "UPDATE allocations SET arm = 'control'",
        "DELETE FROM allocations",
        "UPDATE audit_records SET actor = 'someone else'",
        "DELETE FROM audit_records",
    ):
        with (
            pytest.raises(sa.exc.DatabaseError, match="append-only"),
            db.engine.begin() as connection,
        ):
            connection.exec_driver_sql(statement)


def test_allocations_made_before_their_ledger_named_participants_get_the_codes(settings, db, api):
    coordinator = api.user("coordinator", "PHL")
    codes = [api.enroll(coordinator) for _ in range(3)]
    for code in codes:
        assert api.randomize(coordinator, code).status_code == 200
    db.dispose()
    config = alembic_config(settings.database_url, server_key=settings.server_key)
    command.downgrade(config, "2494a9cbf658")  # the ledger before it named participants
    command.upgrade(config, "head")
    with db.engine.connect() as connection:
        pairs = connection.execute(
            sa.text(
                "SELECT a.participant_code, p.code FROM allocations a "
                "JOIN participants p ON p.id = a.participant_id"
            )
        ).all()
    assert sorted(code for code, _ in pairs) == sorted(codes)
    assert all(filled == code for filled, code in pairs)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE allocations SET participant_code = 'X'")


def test_studies_made_before_blinding_keys_get_one_that_opens(settings, db, api):
    db.dispose()
    config = alembic_config(settings.database_url, server_key=settings.server_key)
    command.downgrade(config, "b6c1d2e3f4a5")  # before blinding keys
    command.upgrade(config, "head")
    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study)).one()
        key = studies.blinding_key_of(session, study)
        secret = studies.secret_of(session, study)
    assert len(key) == 32 and key != secret
    assert pseudonym(key, "PS-PHL-0001").startswith("P")


def test_a_downgrade_below_remote_enrollment_refuses_while_people_who_joined_online_exist(
    settings, db, api
):
    code = api.enroll(api.user("coordinator", "PHL"))
    with db.engine.begin() as connection:  # as a sign-up through the public link is kept
        connection.execute(
            sa.text("UPDATE participants SET created_by = NULL, source = 'join' WHERE code = :c"),
            {"c": code},
        )
    db.dispose()
    config = alembic_config(settings.database_url, server_key=settings.server_key)
    with pytest.raises(RuntimeError, match="signed up through the public link"):
        command.downgrade(config, "4f993d8aad83")
    with make_engine(settings).connect() as connection:  # nothing was changed
        assert connection.scalar(sa.text("SELECT count(*) FROM consents")) >= 1
