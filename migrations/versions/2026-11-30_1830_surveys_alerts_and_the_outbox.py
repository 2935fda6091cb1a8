"""Surveys, safety alerts and the outbox of messages to send.

`survey_instances`: one per participant and timepoint, with its window (dates in the
study's time zone), the hash of its link, its answers and scores, and how many of its
messages (invitation, reminders) were enqueued. `survey_retired_links`: hashes of
replaced links (410, not 404). `survey_alerts`: safety rules met by a submission,
until acknowledged. `outbox_messages`: messages to send, enqueued in the transaction
that calls for them, sent once by whichever scheduler claims them.

Revision ID: b6c1d2e3f4a5
Revises: 5d8e1b4f7a23
Create Date: 2026-11-30 18:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "b6c1d2e3f4a5"
down_revision: str | None = "5d8e1b4f7a23"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("participant_code", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_outbox_messages_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_outbox_messages_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_messages_dedupe_key")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_messages_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_messages_study_id"), ["study_id"], unique=False)

    op.create_table(
        "survey_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("participant_code", sa.String(length=32), nullable=False),
        sa.Column("timepoint", sa.String(length=64), nullable=False),
        sa.Column(
            "instruments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("anchor_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("opens_on", sa.Date(), nullable=False),
        sa.Column("closes_on", sa.Date(), nullable=False),
        sa.Column("issue", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "answers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "scores",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("messages_enqueued", sa.Integer(), nullable=False),
        sa.Column("saved_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_survey_instances_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_survey_instances_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_survey_instances_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_instances")),
        sa.UniqueConstraint(
            "participant_id", "timepoint", name=op.f("uq_survey_instances_participant_id_timepoint")
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_survey_instances_token_hash")),
    )
    with op.batch_alter_table("survey_instances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_instances_opens_on"), ["opens_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_survey_instances_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "survey_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("participant_code", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.Column("raised_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"], ["users.id"], name=op.f("fk_survey_alerts_acknowledged_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["survey_instances.id"],
            name=op.f("fk_survey_alerts_instance_id_survey_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_survey_alerts_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_survey_alerts_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_alerts")),
    )
    with op.batch_alter_table("survey_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_alerts_study_id"), ["study_id"], unique=False)

    op.create_table(
        "survey_retired_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["survey_instances.id"],
            name=op.f("fk_survey_retired_links_instance_id_survey_instances"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_survey_retired_links")),
    )


def downgrade() -> None:
    op.drop_table("survey_retired_links")
    with op.batch_alter_table("survey_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_alerts_study_id"))

    op.drop_table("survey_alerts")
    with op.batch_alter_table("survey_instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_instances_study_id"))
        batch_op.drop_index(batch_op.f("ix_survey_instances_opens_on"))

    op.drop_table("survey_instances")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_messages_study_id"))
        batch_op.drop_index("ix_outbox_messages_due")

    op.drop_table("outbox_messages")
