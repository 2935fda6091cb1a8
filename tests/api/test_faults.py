"""Faults degrade, never freeze: a stuck lock gives 503s, `/healthz` stays live, and the
server recovers when the lock goes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient

from app.db.schema import alembic_config, head_revision
from app.demo import load_demo
from app.main import create_app
from tests import pg
from tests.helpers import STUDY, bearer, enrollment
from tests.live import running_servers

LOCK_TIMEOUT_MS = 3000
WRITERS = 40  # more than a process's request slots


@contextmanager
def holding_the_audit_chain(settings) -> Iterator[None]:
    """Another session holds the audit chain's head (every write needs it)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # SQLite locks the whole database
        connection.execute("UPDATE audit_chain_head SET seq = seq WHERE id = 1")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(pg.conninfo(database)) as connection:
        connection.execute("SELECT * FROM audit_chain_head WHERE id = 1 FOR UPDATE")
        yield
        connection.rollback()


def _env(settings) -> dict[str, str]:
    env = {
        "TRIALDESK_DATABASE_URL": settings.database_url,
        "TRIALDESK_DB_LOCK_TIMEOUT_MS": str(LOCK_TIMEOUT_MS),
        "TRIALDESK_REQUEST_SLOT_TIMEOUT_S": "30",
    }
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return env


async def _storm(url: str, token: str) -> tuple[list[tuple[float, int, str]], list[float]]:
    """Writers and health checks at once: when each answered, and how."""
    writes: list[tuple[float, int, str]] = []
    healthy_at: list[float] = []
    limits = httpx.Limits(max_connections=WRITERS + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def write() -> None:
            response = await client.post(
                f"/api/v1/studies/{STUDY}/participants", json=enrollment(), headers=bearer(token)
            )
            writes.append(
                (time.monotonic(), response.status_code, response.headers.get("retry-after", ""))
            )

        async def check_health() -> None:
            while len(writes) < WRITERS:
                response = await client.get("/healthz")
                assert response.status_code == 200
                healthy_at.append(time.monotonic())

        await asyncio.gather(*(write() for _ in range(WRITERS)), check_health())
    return writes, healthy_at


@pytest.mark.slow
def test_a_stuck_lock_gives_503s_a_live_healthz_and_then_recovery(settings, db):
    with db.begin() as session:
        token = load_demo(session).token
    with running_servers(_env(settings)) as (url,):
        with holding_the_audit_chain(settings):
            writes, healthy_at = asyncio.run(_storm(url, token))
        assert {status for _, status, _ in writes} == {503}, writes
        assert all(retry_after for _, _, retry_after in writes)
        first_answer = min(at for at, _, _ in writes)
        assert healthy_at and healthy_at[0] < first_answer  # not queued behind the writers
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        recovered = httpx.post(
            f"{url}/api/v1/studies/{STUDY}/participants",
            json=enrollment(),
            headers=bearer(token),
            timeout=30,
        )
        assert recovered.status_code == 201, recovered.text


def test_readyz_is_503_until_the_migrations_are_at_head(settings, db):
    config = alembic_config(settings.database_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json() == {
            "status": "ready",
            "revision": head_revision(),
            "head": head_revision(),
        }
        db.dispose()
        command.downgrade(config, "-1")
        behind = client.get("/readyz")
        assert behind.status_code == 503
        assert behind.json()["revision"] != head_revision()
        assert client.get("/healthz").status_code == 200  # up, just not ready
        command.upgrade(config, "head")
        assert client.get("/readyz").status_code == 200
