"""Audit records name the request that made them (`X-Request-ID`, also in the logs).

Records made before this revision have none; a record's hash covers the request id
only when it has one, so their hashes still verify.

Revision ID: 5d8e1b4f7a23
Revises: 9a4b7e2c5d10
Create Date: 2026-11-30 18:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d8e1b4f7a23"
down_revision: str | None = "9a4b7e2c5d10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding a nullable column needs no copy of the table, even on SQLite, so the
    # append-only triggers stay in place.
    op.add_column("audit_records", sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:  # dropping a column copies the table, which drops its triggers
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_records_no_{event}")
    with op.batch_alter_table("audit_records") as batch_op:
        batch_op.drop_column("request_id")
    if sqlite:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_records_no_{event.lower()} BEFORE {event} ON audit_records "
                "BEGIN SELECT RAISE(ABORT, 'audit_records is append-only'); END"
            )
