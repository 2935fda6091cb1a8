"""Alembic environment: the URL comes from Trialdesk's settings unless the caller set one.

The environment may use the application (its settings, its models for autogenerate);
the revisions may not: they import the frozen copies of `trialdesk_migrations.frozen`.
The server key a revision needs is found here, by today's settings, when the caller of
Alembic gave none.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from app.config import Settings
from app.db.base import UTCDateTime
from app.db.engine import make_engine
from app.models import Base
from trialdesk_migrations.frozen.server_key import FIND_SERVER_KEY

config = context.config
target_metadata = Base.metadata


def _find_server_key(database_url: str) -> bytes:
    return Settings(database_url=database_url).server_key


config.attributes.setdefault(FIND_SERVER_KEY, _find_server_key)


def _render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """New revisions use the frozen column type, never the application's."""
    if kind == "type" and isinstance(item, UTCDateTime):
        autogen_context.imports.add(
            "from trialdesk_migrations.frozen.db_20261125 import UTCDateTime"
        )
        return "UTCDateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by copying it; with foreign keys enforced, dropping the
        # old copy of a table others refer to would fail. Off for the migration only
        # (a PRAGMA has no effect inside a transaction, so on the raw connection first).
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration left rows that break foreign keys: {broken}")
    if sqlite:
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings().database_url
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported")
run_migrations_online()
