"""Fixtures: real databases (SQLite files and a PostgreSQL server) built by the migrations.

Every test that takes `settings` runs once on SQLite and once on PostgreSQL. The schema
is built once per backend by running the Alembic migrations; each test then gets its
own copy (a copied SQLite file, or a PostgreSQL database made from a template), so tests
never share state and the application runs exactly as in production. The PostgreSQL
copies are made one test ahead and dropped after it by threads of the worker
(`pg.DatabasePool`): the server's copying and dropping overlap the tests' own work.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings

from app.config import Settings
from app.db.engine import Database
from app.db.schema import alembic_config
from app.demo import load_demo
from app.main import create_app
from tests import pg, shared_routes
from tests.helpers import Api
from tests.smtp import Inbox, smtp_server

shared_routes.share()  # FastAPI's per-application route building, done once

REQUIRE_PG = os.environ.get("TRIALDESK_TEST_REQUIRE_PG") == "1"
# The audit trail's anchors of every test database (each has a chain id of its own)
# go to a folder of this run, never to the user's state folder.
os.environ.setdefault("TRIALDESK_STATE_DIR", tempfile.mkdtemp(prefix="trialdesk-test-state-"))

# Key files: SQLite databases without TRIALDESK_SECRET_KEY keep their key file in the
# user's config folder (platformdirs: $XDG_CONFIG_HOME/trialdesk/keys/). Tests point that
# folder to a temporary one (inherited by the servers of tests/live.py), so nothing is
# written into the real ~/.config, and a developer's TRIALDESK_KEY_FILE is not used.
_CONFIG_HOME = tempfile.mkdtemp(prefix="trialdesk-test-config-")
atexit.register(shutil.rmtree, _CONFIG_HOME, ignore_errors=True)
os.environ["XDG_CONFIG_HOME"] = _CONFIG_HOME
os.environ.pop("TRIALDESK_KEY_FILE", None)

# Property tests draw the same examples on every run: a rare example that fails shows
# up as a failure of a change, not as a flaky CI run on an unrelated one.
hypothesis_settings.register_profile("trialdesk", derandomize=True, deadline=None)
hypothesis_settings.load_profile("trialdesk")
TEST_SECRET_KEY = "test-server-key-0123456789abcdef-0123456789"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database to copy from (name)."""
    if not pg.available():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (TRIALDESK_TEST_REQUIRE_PG=1): {pg.PG_URL} fails")
        pytest.skip("PostgreSQL is not reachable; set TRIALDESK_TEST_PG_URL")
    name = pg.create_database("trialdesk_tpl")
    command.upgrade(alembic_config(pg.database_url(name)), "head")
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="session")
def pg_pool(pg_template: str) -> Iterator[pg.DatabasePool]:
    """Copies of the template made one test ahead and dropped after, in a thread."""
    pool = pg.DatabasePool(pg_template)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy from."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    command.upgrade(alembic_config(f"sqlite:///{path}"), "head")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of the backend, for this test alone."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "trialdesk.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    pool: pg.DatabasePool = request.getfixturevalue("pg_pool")
    name = pool.take()
    yield pg.database_url(name)
    pool.give_back(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of an application on a copy of the migrated template (SQLite, then
    PostgreSQL), shared by the tests of one module and dropped after them: for modules
    whose tests each make their own participants (safety, consent, join)."""
    name = None
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("module") / "trialdesk.db"
        shutil.copyfile(template, path)
        url, key = f"sqlite:///{path}", None
    else:
        # A copy made ahead by the pool, and dropped by its thread: dropping a database
        # makes the server checkpoint, which took from seconds to minutes on a busy
        # machine when the module's last test waited for it.
        pool: pg.DatabasePool = request.getfixturevalue("pg_pool")
        name = pool.take()
        url, key = pg.database_url(name), TEST_SECRET_KEY
    yield Settings(database_url=url, secret_key=key, base_url="http://testserver", scheduler=False)
    if name is not None:
        pool.give_back(name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # With SQLite no key is set, so the default key file (in the temporary config folder
    # above, one per database) is exercised.
    key = None if database_url.startswith("sqlite") else TEST_SECRET_KEY
    return Settings(
        database_url=database_url, secret_key=key, base_url="http://testserver", scheduler=False
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    yield database
    database.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient, db: Database) -> Api:
    """The demo study loaded, and an `Api` helper holding the demo admin's token."""
    with db.begin() as session:
        loaded = load_demo(session)
    return Api(client, admin_token=loaded.token)


@pytest.fixture(scope="module")
def module_db(module_settings: Settings) -> Iterator[Database]:
    database = Database(module_settings)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def module_api(module_settings: Settings, module_db: Database) -> Iterator[Api]:
    """`api` shared by a module's tests (the demo study in the `module_settings` database):
    for the cases of a parametrized refusal test, which each make their own participant
    and store nothing, so need no fresh database, application and demo each."""
    with module_db.begin() as session:
        loaded = load_demo(session)
    with TestClient(create_app(module_settings)) as test_client:
        yield Api(test_client, admin_token=loaded.token)


CHROMIUM = "/usr/bin/chromium"  # Debian's, never a downloaded browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (one per test module)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server in this process (aiosmtpd) on a loopback port: `inbox.port`."""
    box = Inbox()
    with smtp_server(box) as port:
        box.port = port  # type: ignore[attr-defined]
        yield box


@pytest.fixture
def mailer(settings: Settings, inbox: Inbox) -> Iterator[Database]:
    """The database, with the settings of a server that mails through `inbox`."""
    db = Database(
        settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": inbox.port})  # type: ignore[attr-defined]
    )
    yield db
    db.dispose()
