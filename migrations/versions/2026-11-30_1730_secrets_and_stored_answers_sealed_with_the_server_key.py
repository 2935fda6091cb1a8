"""Study secrets and stored answers sealed with the server key; its fingerprint recorded.

A copy of the database used to hold every study secret (so every future allocation)
in plain text. Each secret is now sealed (AES-GCM, a key derived from the server key,
bound to the study's slug); `server_key` records the key's fingerprint, so starting
with another key is refused instead of silently failing. Migrating a database that has
studies needs the server key (TRIALDESK_SECRET_KEY, or the key file beside SQLite).

Answers stored for Idempotency-Key replays are sealed from now on too; those stored
before (in plain text, some with contact details) are deleted: a retry of a request
made before the upgrade is then treated as a new request.

Revision ID: 9a4b7e2c5d10
Revises: 3f9d2c7a1e54
Create Date: 2026-11-30 17:30:00.000000+00:00
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime, utcnow
from trialdesk_migrations.frozen.keys_20261130 import Keys, Use
from trialdesk_migrations.frozen.server_key import current_server_key

revision: str = "9a4b7e2c5d10"
down_revision: str | None = "3f9d2c7a1e54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

studies = sa.table(
    "studies", sa.column("id", sa.Integer), sa.column("slug"), sa.column("secret", sa.LargeBinary)
)


def upgrade() -> None:
    op.create_table(
        "server_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_key")),
    )
    with op.batch_alter_table("studies") as batch_op:
        batch_op.alter_column(
            "secret", existing_type=sa.LargeBinary(length=32), type_=sa.LargeBinary(length=128)
        )
    keys = _rewrite_secrets(
        lambda keys, secret, slug: keys.seal(Use.study_secret, secret, context=slug)
    )
    op.execute("DELETE FROM idempotency_keys")
    if keys is not None:  # the secrets are sealed with this key from now on
        server_key = sa.table(
            "server_key",
            sa.column("id", sa.Integer),
            sa.column("fingerprint", sa.String),
            sa.column("recorded_at", UTCDateTime(timezone=True)),
        )
        op.get_bind().execute(
            server_key.insert().values(id=1, fingerprint=keys.fingerprint, recorded_at=utcnow())
        )


def downgrade() -> None:
    _rewrite_secrets(lambda keys, secret, slug: keys.open(Use.study_secret, secret, context=slug))
    with op.batch_alter_table("studies") as batch_op:
        batch_op.alter_column(
            "secret", existing_type=sa.LargeBinary(length=128), type_=sa.LargeBinary(length=32)
        )
    op.drop_table("server_key")


def _rewrite_secrets(change: Callable[[Keys, bytes, str], bytes]) -> Keys | None:
    """Apply `change` to every study's secret; the keys used (None: no study)."""
    connection = op.get_bind()
    rows = connection.execute(sa.select(studies.c.id, studies.c.slug, studies.c.secret)).all()
    if not rows:
        return None
    keys = Keys(current_server_key())
    for study_id, slug, secret in rows:
        connection.execute(
            studies.update()
            .where(studies.c.id == study_id)
            .values(secret=change(keys, bytes(secret), slug))
        )
    return keys
