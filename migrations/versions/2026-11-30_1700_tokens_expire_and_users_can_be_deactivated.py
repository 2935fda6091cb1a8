"""Tokens expire, and users can be deactivated.

`api_tokens.expires_at`: tokens that exist get 90 days from their creation (the
default lifetime of new ones). `users.deactivated_at` and `deactivation_reason`: a
deactivated user's tokens are refused at once.

Revision ID: 3f9d2c7a1e54
Revises: 7c1e0f3a9b2d
Create Date: 2026-11-30 17:00:00.000000+00:00
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "3f9d2c7a1e54"
down_revision: str | None = "7c1e0f3a9b2d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIFETIME = timedelta(days=90)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.add_column(sa.Column("expires_at", UTCDateTime(timezone=True), nullable=True))
    tokens = sa.table(
        "api_tokens",
        sa.column("id", sa.Integer),
        sa.column("created_at", UTCDateTime(timezone=True)),
        sa.column("expires_at", UTCDateTime(timezone=True)),
    )
    connection = op.get_bind()
    for token_id, created_at in connection.execute(sa.select(tokens.c.id, tokens.c.created_at)):
        connection.execute(
            tokens.update().where(tokens.c.id == token_id).values(expires_at=created_at + LIFETIME)
        )
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.alter_column(
            "expires_at", existing_type=UTCDateTime(timezone=True), nullable=False
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("deactivated_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deactivation_reason", sa.String(2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("deactivation_reason")
        batch_op.drop_column("deactivated_at")
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_column("expires_at")
