"""Corrections of stored answers (SPEC 8): a stored answer is never edited in place.

`answer_corrections` keeps, for each correction of a submitted survey's answer, the item,
the original and the new value and the reason (each sealed at rest, like the answers),
who made it and when. Rows are only ever added: triggers refuse UPDATE and DELETE, as
on the allocation ledger and the audit trail (key rotation sets them aside while it
re-seals).

Revision ID: c4e8a1f9d203
Revises: af99fb9b0e4d
Create Date: 2026-12-07 05:47:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "c4e8a1f9d203"
down_revision: str | None = "af99fb9b0e4d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "answer_corrections"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.LargeBinary(), nullable=False),
        sa.Column("old_value", sa.LargeBinary(), nullable=True),
        sa.Column("new_value", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.LargeBinary(), nullable=False),
        sa.Column("corrected_by", sa.Integer(), nullable=False),
        sa.Column("corrected_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["corrected_by"], ["users.id"], name=op.f("fk_answer_corrections_corrected_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["survey_instances.id"],
            name=op.f("fk_answer_corrections_instance_id_survey_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_answer_corrections_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_corrections")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_answer_corrections_instance_id"), ["instance_id"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        # The function was made with the ledger's triggers (the first revision).
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION trialdesk_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{event.lower()} BEFORE {event} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END"
            )


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_answer_corrections_instance_id"))
    op.drop_table(TABLE)  # its triggers go with it
