"""Allocations name their participant's code.

The allocation ledger becomes readable (and checkable) on its own: each row carries the
code of the participant it went to, filled in here for the rows that exist. The ledger
is append-only, so its triggers are set aside for the fill and put back after; SQLite
alters a column by copying the table, which drops its triggers, so they are made again.

Revision ID: 7c1e0f3a9b2d
Revises: 2494a9cbf658
Create Date: 2026-11-30 16:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e0f3a9b2d"
down_revision: str | None = "2494a9cbf658"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILL = (
    "UPDATE allocations SET participant_code = "
    "(SELECT code FROM participants WHERE participants.id = allocations.participant_id)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("allocations", sa.Column("participant_code", sa.String(32), nullable=True))
        op.execute("ALTER TABLE allocations DISABLE TRIGGER allocations_append_only")
        op.execute(FILL)
        op.execute("ALTER TABLE allocations ENABLE TRIGGER allocations_append_only")
        op.alter_column("allocations", "participant_code", nullable=False)
        return
    _drop_sqlite_triggers()
    with op.batch_alter_table("allocations") as batch_op:
        batch_op.add_column(sa.Column("participant_code", sa.String(32), nullable=True))
    op.execute(FILL)
    with op.batch_alter_table("allocations") as batch_op:
        batch_op.alter_column("participant_code", existing_type=sa.String(32), nullable=False)
    _make_sqlite_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("allocations", "participant_code")
        return
    _drop_sqlite_triggers()
    with op.batch_alter_table("allocations") as batch_op:
        batch_op.drop_column("participant_code")
    _make_sqlite_triggers()


def _drop_sqlite_triggers() -> None:
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS allocations_no_{event}")


def _make_sqlite_triggers() -> None:
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER allocations_no_{event.lower()} BEFORE {event} ON allocations "
            "BEGIN SELECT RAISE(ABORT, 'allocations is append-only'); END"
        )
