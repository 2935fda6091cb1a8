"""The schema's version: Alembic's configuration for this project, and whether a
database is at the newest revision."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from app.config import ConfigurationError

# The migrations are the package `trialdesk_migrations`: the project's migrations/ folder,
# mapped to that name by setup.py (in an editable install and in a wheel alike).
MIGRATIONS_PACKAGE = "trialdesk_migrations"

SERVER_KEY = "trialdesk_server_key"


@cache
def migrations_folder() -> Path:
    """The folder of Alembic's environment and revisions, wherever Trialdesk is installed."""
    spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"the package {MIGRATIONS_PACKAGE} (migrations/) is not installed: "
            "reinstall Trialdesk (pip install -e . in the project's folder)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _config() -> Config:
    # No alembic.ini: an installed wheel has none (the one at the project's top serves
    # developers' `alembic revision`); upgrading needs nothing of it but the location.
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def alembic_config(database_url: str, *, server_key: bytes | None = None) -> Config:
    """Alembic's configuration for this project and database. Revisions that seal or
    unseal secrets use `server_key` (else the settings' key, as `Settings` finds it)."""
    config = _config()
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if server_key is not None:
        config.attributes[SERVER_KEY] = server_key
    return config


@cache
def head_revision() -> str | None:
    """The newest revision of the migrations this code ships with."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()
