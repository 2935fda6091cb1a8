"""What the join tests share: a database of the module's own on each backend."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests import pg
from tests.conftest import TEST_SECRET_KEY


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of an application on a copy of the migrated template (SQLite, then
    PostgreSQL), shared by the tests of one module and dropped after them."""
    name = None
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("join") / "trialdesk.db"
        shutil.copyfile(template, path)
        url, key = f"sqlite:///{path}", None
    else:
        name = pg.create_database("trialdesk_t", template=request.getfixturevalue("pg_template"))
        url, key = pg.database_url(name), TEST_SECRET_KEY
    yield Settings(database_url=url, secret_key=key, base_url="http://testserver", scheduler=False)
    if name is not None:
        pg.drop_database(name)
