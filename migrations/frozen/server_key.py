"""The server key for a revision that seals or opens: the one the caller of Alembic gave
(`alembic_config(..., server_key=...)`), else the one the deployment's settings find,
which the environment (env.py) looks up. Where the key lives is configuration of the day,
not part of what a revision does, so it is asked for, not frozen.
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import op

SERVER_KEY = "trialdesk_server_key"  # bytes given by the caller (app/db/schema.py)
FIND_SERVER_KEY = "trialdesk_find_server_key"  # env.py: database URL -> the settings' key


def current_server_key() -> bytes:
    """The server key for the database being migrated."""
    attributes = op.get_context().config.attributes
    key: bytes | None = attributes.get(SERVER_KEY)
    if key is not None:
        return key
    find: Callable[[str], bytes] = attributes[FIND_SERVER_KEY]
    return find(op.get_bind().engine.url.render_as_string(hide_password=False))
