"""`/healthz` is liveness: it needs the process and a `SELECT 1`, nothing a lock held by
another session can block. `/readyz` reads the schema and may say not ready meanwhile."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from app.api.operations import LIVENESS_TIMEOUT_S
from app.main import create_app
from tests import pg


@contextmanager
def every_table_locked(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Another session holds every table of the database as exclusively as it can."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(str(url.database), isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    with psycopg.connect(pg.conninfo(url.database)) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        names = ", ".join(f'"{name}"' for (name,) in tables)
        assert "alembic_version" in names  # what /healthz used to read
        connection.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            connection.rollback()


def test_healthz_answers_while_another_session_holds_every_table(settings):
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        with every_table_locked(settings):
            started = time.monotonic()
            live = client.get("/healthz")
            assert live.status_code == 200, live.text
            assert live.json() == {"status": "ok"}
            assert time.monotonic() - started < LIVENESS_TIMEOUT_S
            if not settings.is_sqlite:  # PostgreSQL: the revision cannot be read now
                assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").status_code == 200


def test_healthz_is_503_when_the_database_does_not_answer(settings):
    nowhere = "postgresql+psycopg://nobody@127.0.0.1:9/none"  # nothing listens on port 9
    key = SecretStr("k" * 32)
    app = create_app(settings.model_copy(update={"database_url": nowhere, "secret_key": key}))
    client = TestClient(app)  # no lifespan: it would look for the server key there
    assert client.get("/healthz").status_code == 503
