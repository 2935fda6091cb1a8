"""The PostgreSQL server the tests and benchmarks use: where it is, and throw-away databases."""

from __future__ import annotations

import os
import uuid

import psycopg
from sqlalchemy.engine import make_url

PG_URL = os.environ.get(
    "TRIALDESK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def conninfo(database: str | None = None) -> str:
    """A libpq URL (psycopg's) for the server, on another database if given."""
    url = make_url(PG_URL).set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def database_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the server."""
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def available() -> bool:
    try:
        with psycopg.connect(conninfo(), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def execute(sql: str) -> None:
    """Run one statement as the server's admin, outside a transaction."""
    with psycopg.connect(conninfo(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def create_database(prefix: str, *, template: str | None = None) -> str:
    """A new empty (or templated) database; return its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_database(name: str) -> None:
    execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
