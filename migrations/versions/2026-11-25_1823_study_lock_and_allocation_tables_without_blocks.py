"""Study lock, and allocations from a table that gives no blocks.

`studies.locked_at` records database lock (when the secret is revealed). Allocation
block, block size and position become nullable: an allocation table prepared by an
independent statistician need only list stratum, sequence and arm.

SQLite alters a column by copying the table, which drops its triggers; the
append-only triggers on `allocations` are therefore dropped and made again around it.

Revision ID: 2494a9cbf658
Revises: 5e161a8ac906
Create Date: 2026-11-25 18:23:11.826220+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "2494a9cbf658"
down_revision: str | None = "5e161a8ac906"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BLOCK_COLUMNS = ("block", "block_size", "position")


def upgrade() -> None:
    _set_block_columns_nullable(True)
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("locked_at")
    _set_block_columns_nullable(False)


def _set_block_columns_nullable(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS allocations_no_{event}")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        for column in BLOCK_COLUMNS:
            batch_op.alter_column(column, existing_type=sa.INTEGER(), nullable=nullable)
    if sqlite:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER allocations_no_{event.lower()} BEFORE {event} ON allocations "
                "BEGIN SELECT RAISE(ABORT, 'allocations is append-only'); END"
            )
