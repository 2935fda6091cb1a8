"""Blinding keys: one per study, behind the pseudonyms and group codes of exports.

Each study gets 256 random bits, sealed with the server key (bound to the study's
slug), in a table of its own: apart from the randomization secret, which is revealed
at lock, while the blinding key never is. Studies made before this revision get theirs
now, so migrating a database that has studies needs the server key, as the revision
that sealed the secrets did.

Revision ID: c7d2e8f1a903
Revises: b6c1d2e3f4a5
Create Date: 2026-11-30 20:30:00.000000+00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.base
from app.config import Settings
from app.db.base import utcnow
from app.db.schema import SERVER_KEY
from app.keys import Keys, Use

revision: str = "c7d2e8f1a903"
down_revision: str | None = "b6c1d2e3f4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_BYTES = 32


def upgrade() -> None:
    blinding_keys = op.create_table(
        "blinding_keys",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(length=128), nullable=False),
        sa.Column("created_at", app.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"]),
        sa.PrimaryKeyConstraint("study_id"),
    )
    connection = op.get_bind()
    studies = sa.table("studies", sa.column("id", sa.Integer), sa.column("slug"))
    rows = connection.execute(sa.select(studies.c.id, studies.c.slug)).all()
    if not rows:
        return
    key = op.get_context().config.attributes.get(SERVER_KEY)
    if key is None:
        url = connection.engine.url.render_as_string(hide_password=False)
        key = Settings(database_url=url).server_key
    keys = Keys(key)
    now = utcnow()
    for study_id, slug in rows:
        sealed = keys.seal(Use.blinding_key, secrets.token_bytes(KEY_BYTES), context=slug)
        connection.execute(
            blinding_keys.insert().values(study_id=study_id, sealed=sealed, created_at=now)
        )


def downgrade() -> None:
    op.drop_table("blinding_keys")
