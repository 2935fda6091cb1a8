"""The stable keys (survey links, console links and forms) kept in the database, sealed
with the server key, so that `trialdesk keys rotate` keeps links already handed out.

The column starts empty: the first start after this revision stores the keys the
current server key derives (what every link so far was made with).

Revision ID: 5c1e0a9d7b42
Revises: fc929eb8918c
Create Date: 2026-12-07 09:05:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e0a9d7b42"
down_revision: str | None = "fc929eb8918c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("server_key") as batch_op:
        batch_op.add_column(sa.Column("stable_keys", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_key") as batch_op:
        batch_op.drop_column("stable_keys")
