"""The date-of-birth re-check at the first survey and the call after a failed consent
quiz (SPEC 10): the outcome of the re-check on the applicant (`matched` or
`mismatched`, and when: asked once), and a participant's flag for a call to go over the
consent after failing a re-consent quiz twice (a sign-up's is `applicants.needs_call`).

Revision ID: 5d0b1f3c9a21
Revises: 7e4eaba479b1
Create Date: 2026-12-07 21:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "5d0b1f3c9a21"
down_revision: str | None = "7e4eaba479b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("applicants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("date_of_birth_check", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("date_of_birth_checked_at", UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("needs_call", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("needs_call")
    with op.batch_alter_table("applicants", schema=None) as batch_op:
        batch_op.drop_column("date_of_birth_checked_at")
        batch_op.drop_column("date_of_birth_check")
