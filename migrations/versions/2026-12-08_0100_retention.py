"""Retention (SPEC 11): participants' texts (replies, STOP, HELP), the contact log and
alternate contacts, the incentives ledger and its gift cards, engagement events; on
participants their channel, consent to texting and time zone; on outbox messages their
channel and a text's delivery status; on surveys why one was missed.

Revision ID: a8ba252f1700
Revises: 5d0b1f3c9a21
Create Date: 2026-12-08 00:42:16.384830+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "a8ba252f1700"
down_revision: str | None = "5d0b1f3c9a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alternate_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=True),
        sa.Column("relation", sa.LargeBinary(), nullable=True),
        sa.Column("phone", sa.LargeBinary(), nullable=True),
        sa.Column("email", sa.LargeBinary(), nullable=True),
        sa.Column("permission_on", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("removed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("purged_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_alternate_contacts_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_alternate_contacts_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_alternate_contacts_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_alternate_contacts_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alternate_contacts")),
    )
    with op.batch_alter_table("alternate_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alternate_contacts_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alternate_contacts_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "contact_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("participant_code", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=True),
        sa.Column("next_step", sa.LargeBinary(), nullable=True),
        sa.Column("next_step_on", sa.Date(), nullable=True),
        sa.Column("timepoint", sa.LargeBinary(), nullable=True),
        sa.Column("timepoint_index", sa.String(length=64), nullable=True),
        sa.Column("made_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("made_by", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["made_by"], ["users.id"], name=op.f("fk_contact_attempts_made_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_contact_attempts_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_contact_attempts_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_contact_attempts_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_attempts")),
    )
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_attempts_participant", ["participant_id", "made_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_contact_attempts_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "engagement_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("participant_key", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("imported_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_engagement_events_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_events")),
        sa.UniqueConstraint(
            "study_id", "event_id", name=op.f("uq_engagement_events_study_id_event_id")
        ),
    )
    with op.batch_alter_table("engagement_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_engagement_events_participant",
            ["study_id", "participant_key", "at"],
            unique=False,
        )

    op.create_table(
        "sms_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("participant_code", sa.String(length=32), nullable=True),
        sa.Column("from_number", sa.LargeBinary(), nullable=False),
        sa.Column("from_index", sa.String(length=64), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("respond_by", UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("handled_by", sa.Integer(), nullable=True),
        sa.Column("handled_note", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["handled_by"], ["users.id"], name=op.f("fk_sms_replies_handled_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_sms_replies_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_sms_replies_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_sms_replies_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_replies")),
        sa.UniqueConstraint("provider_ref", name=op.f("uq_sms_replies_provider_ref")),
    )
    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_replies_from_index"), ["from_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_sms_replies_study_id"), ["study_id"], unique=False)

    op.create_table(
        "incentive_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("participant_code", sa.String(length=32), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("timepoint", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("earned_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.LargeBinary(), nullable=True),
        sa.Column("approved_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column("issued_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("issued_by", sa.Integer(), nullable=True),
        sa.Column("issue_method", sa.String(length=16), nullable=True),
        sa.Column("redeemed_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["users.id"], name=op.f("fk_incentive_entries_approved_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["survey_instances.id"],
            name=op.f("fk_incentive_entries_instance_id_survey_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["issued_by"], ["users.id"], name=op.f("fk_incentive_entries_issued_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_incentive_entries_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_incentive_entries_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_incentive_entries_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_entries")),
        sa.UniqueConstraint(
            "instance_id", "kind", name=op.f("uq_incentive_entries_instance_id_kind")
        ),
    )
    with op.batch_alter_table("incentive_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incentive_entries_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(
            "ix_incentive_entries_study_state", ["study_id", "state"], unique=False
        )

    op.create_table(
        "gift_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.String(length=64), nullable=False),
        sa.Column("code", sa.LargeBinary(), nullable=False),
        sa.Column("code_index", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("loaded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["incentive_entries.id"],
            name=op.f("fk_gift_cards_entry_id_incentive_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["loaded_by"], ["users.id"], name=op.f("fk_gift_cards_loaded_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_gift_cards_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_cards")),
        sa.UniqueConstraint("code_index", name=op.f("uq_gift_cards_code_index")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_gift_cards_entry_id")),
    )
    with op.batch_alter_table("gift_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gift_cards_study_id"), ["study_id"], unique=False)

    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=8), server_default="email", nullable=False)
        )
        batch_op.add_column(sa.Column("provider_ref", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("delivery", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("delivery_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_messages_provider_ref"), ["provider_ref"], unique=False
        )

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=8), server_default="email", nullable=False)
        )
        batch_op.add_column(sa.Column("sms_consent_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sms_consent_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sms_stopped_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_participants_sms_consent_by_users"), "users", ["sms_consent_by"], ["id"]
        )

    with op.batch_alter_table("survey_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missed_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("missed_note", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("missed_reason_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("missed_reason_at", UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_survey_instances_missed_reason_by_users"),
            "users",
            ["missed_reason_by"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("survey_instances", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_survey_instances_missed_reason_by_users"), type_="foreignkey"
        )
        batch_op.drop_column("missed_reason_at")
        batch_op.drop_column("missed_reason_by")
        batch_op.drop_column("missed_note")
        batch_op.drop_column("missed_reason")

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_participants_sms_consent_by_users"), type_="foreignkey"
        )
        batch_op.drop_column("timezone")
        batch_op.drop_column("sms_stopped_at")
        batch_op.drop_column("sms_consent_by")
        batch_op.drop_column("sms_consent_at")
        batch_op.drop_column("channel")

    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_messages_provider_ref"))
        batch_op.drop_column("delivery_at")
        batch_op.drop_column("delivery")
        batch_op.drop_column("provider_ref")
        batch_op.drop_column("channel")

    with op.batch_alter_table("gift_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gift_cards_study_id"))

    op.drop_table("gift_cards")
    with op.batch_alter_table("incentive_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_incentive_entries_study_state")
        batch_op.drop_index(batch_op.f("ix_incentive_entries_participant_id"))

    op.drop_table("incentive_entries")
    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_replies_study_id"))
        batch_op.drop_index(batch_op.f("ix_sms_replies_from_index"))

    op.drop_table("sms_replies")
    with op.batch_alter_table("engagement_events", schema=None) as batch_op:
        batch_op.drop_index("ix_engagement_events_participant")

    op.drop_table("engagement_events")
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_attempts_study_id"))
        batch_op.drop_index("ix_contact_attempts_participant")

    op.drop_table("contact_attempts")
    with op.batch_alter_table("alternate_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alternate_contacts_study_id"))
        batch_op.drop_index(batch_op.f("ix_alternate_contacts_participant_id"))

    op.drop_table("alternate_contacts")
