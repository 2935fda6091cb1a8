"""The schema's version: Alembic's configuration for this project, and whether a
database is at the newest revision."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


SERVER_KEY = "trialdesk_server_key"


def alembic_config(database_url: str, *, server_key: bytes | None = None) -> Config:
    """Alembic's configuration for this project and database. Revisions that seal or
    unseal secrets use `server_key` (else the settings' key, as `Settings` finds it)."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if server_key is not None:
        config.attributes[SERVER_KEY] = server_key
    return config


@cache
def head_revision() -> str | None:
    """The newest revision of the migrations this code ships with."""
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()
