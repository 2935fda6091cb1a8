"""Kinds of leaving a study (SPEC 8) and surveys entered by staff.

- participants: `withdrawal_kind` (what the person stopped), `withdrawn_on` (the date
  they left, as the team records it) and `withdrawal_category` (a coded reason);
  a participant withdrawn before kinds existed left everything (the old rule cancelled
  every survey), so they become `follow_up`, on the date of `withdrawn_at` in the
  study's time zone, category `other`;
- survey_instances: `mode` (`self` through the link, `staff` in an interview), the
  staff member who entered it, the interview date and whether the assessor was blind.

Revision ID: 7a2d4e6f8b10
Revises: 5c1e0a9d7b42
Create Date: 2026-12-07 10:00:00.000000+00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

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
    _backfill_leavings()
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


def _backfill_leavings() -> None:
    studies = sa.table("studies", sa.column("id", sa.Integer), sa.column("definition", sa.JSON))
    participants = sa.table(
        "participants",
        sa.column("id", sa.Integer),
        sa.column("study_id", sa.Integer),
        sa.column("withdrawn_at", sa.DateTime(timezone=True)),
        sa.column("withdrawal_kind", sa.String),
        sa.column("withdrawn_on", sa.Date),
        sa.column("withdrawal_category", sa.String),
    )
    bind = op.get_bind()
    zones = {
        row.id: ZoneInfo(str((row.definition or {}).get("timezone") or "UTC"))
        for row in bind.execute(sa.select(studies.c.id, studies.c.definition))
    }
    left = bind.execute(
        sa.select(participants.c.id, participants.c.study_id, participants.c.withdrawn_at).where(
            participants.c.withdrawn_at.is_not(None)
        )
    ).all()
    for row in left:
        at = row.withdrawn_at
        if isinstance(at, str):  # SQLite without the model's type
            at = datetime.fromisoformat(at)
        if at.tzinfo is None:  # stored as UTC (app.db.base.UTCDateTime)
            at = at.replace(tzinfo=UTC)
        bind.execute(
            participants.update()
            .where(participants.c.id == row.id)
            .values(
                withdrawal_kind="follow_up",
                withdrawn_on=at.astimezone(zones[row.study_id]).date(),
                withdrawal_category="other",
            )
        )


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
