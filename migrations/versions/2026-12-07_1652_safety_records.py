"""Safety records (SPEC 9): adverse events and their versions, reporting deadlines,
protocol deviations and their versions.

What a version says is sealed (AES-GCM under the server key, like answers and notes);
only ids, numbers, states and the deadlines' times are plain.

Revision ID: 4f993d8aad83
Revises: d5b7c3a9e214
Create Date: 2026-12-07 16:52:21.117671+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "4f993d8aad83"
down_revision: str | None = "d5b7c3a9e214"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "protocol_deviations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("versions", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_protocol_deviations_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_protocol_deviations_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_protocol_deviations_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_protocol_deviations_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protocol_deviations")),
        sa.UniqueConstraint("source", name=op.f("uq_protocol_deviations_source")),
        sa.UniqueConstraint(
            "study_id", "number", name=op.f("uq_protocol_deviations_study_id_number")
        ),
    )
    with op.batch_alter_table("protocol_deviations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_protocol_deviations_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_protocol_deviations_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "protocol_deviation_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("fields", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deviation_id"],
            ["protocol_deviations.id"],
            name=op.f("fk_protocol_deviation_versions_deviation_id_protocol_deviations"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"],
            ["users.id"],
            name=op.f("fk_protocol_deviation_versions_recorded_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protocol_deviation_versions")),
        sa.UniqueConstraint(
            "deviation_id",
            "number",
            name=op.f("uq_protocol_deviation_versions_deviation_id_number"),
        ),
    )
    op.create_table(
        "adverse_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("versions", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("opened_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["survey_alerts.id"],
            name=op.f("fk_adverse_events_alert_id_survey_alerts"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"], ["users.id"], name=op.f("fk_adverse_events_opened_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_adverse_events_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_adverse_events_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_adverse_events_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adverse_events")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_adverse_events_alert_id")),
        sa.UniqueConstraint("study_id", "number", name=op.f("uq_adverse_events_study_id_number")),
    )
    with op.batch_alter_table("adverse_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_adverse_events_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_adverse_events_study_id"), ["study_id"], unique=False)

    op.create_table(
        "adverse_event_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("fields", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["adverse_events.id"],
            name=op.f("fk_adverse_event_versions_event_id_adverse_events"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["users.id"], name=op.f("fk_adverse_event_versions_recorded_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adverse_event_versions")),
        sa.UniqueConstraint(
            "event_id", "number", name=op.f("uq_adverse_event_versions_event_id_number")
        ),
    )
    op.create_table(
        "safety_deadlines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("report_to", sa.String(length=100), nullable=False),
        sa.Column("due_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("applies", sa.Boolean(), nullable=False),
        sa.Column("reported_on", sa.Date(), nullable=True),
        sa.Column("reference", sa.LargeBinary(), nullable=True),
        sa.Column("reported_by", sa.Integer(), nullable=True),
        sa.Column("reported_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["adverse_events.id"],
            name=op.f("fk_safety_deadlines_event_id_adverse_events"),
        ),
        sa.ForeignKeyConstraint(
            ["reported_by"], ["users.id"], name=op.f("fk_safety_deadlines_reported_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_safety_deadlines_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_deadlines")),
        sa.UniqueConstraint("event_id", "code", name=op.f("uq_safety_deadlines_event_id_code")),
    )
    with op.batch_alter_table("safety_deadlines", schema=None) as batch_op:
        batch_op.create_index("ix_safety_deadlines_open", ["study_id", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("safety_deadlines", schema=None) as batch_op:
        batch_op.drop_index("ix_safety_deadlines_open")

    op.drop_table("safety_deadlines")
    op.drop_table("adverse_event_versions")
    with op.batch_alter_table("adverse_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adverse_events_study_id"))
        batch_op.drop_index(batch_op.f("ix_adverse_events_participant_id"))

    op.drop_table("adverse_events")
    op.drop_table("protocol_deviation_versions")
    with op.batch_alter_table("protocol_deviations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protocol_deviations_study_id"))
        batch_op.drop_index(batch_op.f("ix_protocol_deviations_participant_id"))

    op.drop_table("protocol_deviations")
