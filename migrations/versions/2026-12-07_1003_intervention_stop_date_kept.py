"""The day a participant stopped the intervention, kept apart from `withdrawn_on`.

A participant who stops the intervention and later leaves the study altogether had the
first date overwritten by the second; `intervention_stopped_on` keeps it. Filled from
`withdrawn_on` for those whose last leaving was stopping the intervention (those who
left since then lost the date; the audit trail still holds it).

Revision ID: d5b7c3a9e214
Revises: c4e8a1f9d203
Create Date: 2026-12-07 10:03:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d5b7c3a9e214"
down_revision: str | None = "c4e8a1f9d203"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch_op:
        batch_op.add_column(sa.Column("intervention_stopped_on", sa.Date(), nullable=True))
    op.execute(
        "UPDATE participants SET intervention_stopped_on = withdrawn_on "
        "WHERE withdrawal_kind = 'intervention'"
    )


def downgrade() -> None:
    with op.batch_alter_table("participants") as batch_op:
        batch_op.drop_column("intervention_stopped_on")
