"""Every schema change is an Alembic revision, and every revision goes both ways."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from app.cli import alembic_config
from app.config import Settings
from app.db.engine import make_engine
from tests.conftest import PG_URL, _pg_execute


@pytest.fixture
def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_template")  # skips or fails as the PostgreSQL policy says
    name = f"trialdesk_mig_{uuid.uuid4().hex[:10]}"
    _pg_execute(f'CREATE DATABASE "{name}"')
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
