"""Kinds of leaving a study (SPEC 8) and surveys entered by staff.

- participants: `withdrawal_kind` (what the person stopped), `withdrawn_on` (the date
  they left, as the team records it) and `withdrawal_category` (a coded reason);
- survey_instances: `mode` (`self` through the link, `staff` in an interview), the
  staff member who entered it, the interview date and whether the assessor was blind.

Revision ID: 7a2d4e6f8b10
Revises: 5c1e0a9d7b42
Create Date: 2026-12-07 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a2d4e6f8b10"
down_revision: str | None = "5c1e0a9d7b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch_op:
        batch_op.add_column(sa.Column("withdrawal_kind", sa.String(24), nullable=True))
        batch_op.add_column(sa.Column("withdrawn_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("withdrawal_category", sa.String(32), nullable=True))
    with op.batch_alter_table("survey_instances") as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(8), nullable=False, server_default="self"))
        batch_op.add_column(
            sa.Column(
                "entered_by",
                sa.Integer(),
                sa.ForeignKey("users.id", name="fk_survey_instances_entered_by_users"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("interviewed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("assessor_blind", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("survey_instances") as batch_op:
        batch_op.drop_column("assessor_blind")
        batch_op.drop_column("interviewed_on")
        batch_op.drop_column("entered_by")
        batch_op.drop_column("mode")
    with op.batch_alter_table("participants") as batch_op:
        batch_op.drop_column("withdrawal_category")
        batch_op.drop_column("withdrawn_on")
        batch_op.drop_column("withdrawal_kind")
