"""Remote enrollment (SPEC 10): applicants from the public screening link, consents
(electronic with a sealed PDF copy, or in person), participants' language and source,
a pending verification of a self-reported diagnosis, the language of each survey, and
the study's revision (raised by an amendment that adds a consent version).

Participants enrolled before this revision consented in person: each gets that consent
as a row (version, the day of enrollment, recorded by whoever enrolled them), so the
consents list is whole.

Revision ID: 7e4eaba479b1
Revises: 4f993d8aad83
Create Date: 2026-12-07 19:50:52.011853+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime

revision: str = "7e4eaba479b1"
down_revision: str | None = "4f993d8aad83"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "applicants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column(
            "screening",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "strata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "ineligible_reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("name", sa.LargeBinary(), nullable=True),
        sa.Column("email", sa.LargeBinary(), nullable=True),
        sa.Column("phone", sa.LargeBinary(), nullable=True),
        sa.Column("date_of_birth", sa.LargeBinary(), nullable=True),
        sa.Column("email_index", sa.String(length=64), nullable=True),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("address_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "hold_reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("quiz_attempts", sa.Integer(), nullable=False),
        sa.Column("needs_call", sa.Boolean(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decision_reason", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_applicants_decided_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_applicants_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_applicants_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_applicants_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applicants")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_applicants_token_hash")),
    )
    with op.batch_alter_table("applicants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_applicants_address_hash"), ["address_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_applicants_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_applicants_email_index"), ["email_index"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_applicants_phone_index"), ["phone_index"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_applicants_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_applicants_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_applicants_study_id"), ["study_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("applicant_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=True),
        sa.Column("signed_name", sa.LargeBinary(), nullable=True),
        sa.Column("signed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("meaning", sa.String(length=64), nullable=False),
        sa.Column("quiz", sa.LargeBinary(), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("obtained_on", sa.Date(), nullable=True),
        sa.Column("obtained_by", sa.Integer(), nullable=True),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("countersigned_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("countersigned_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["applicant_id"], ["applicants.id"], name=op.f("fk_consents_applicant_id_applicants")
        ),
        sa.ForeignKeyConstraint(
            ["countersigned_by"], ["users.id"], name=op.f("fk_consents_countersigned_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["obtained_by"], ["users.id"], name=op.f("fk_consents_obtained_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_consents_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["users.id"], name=op.f("fk_consents_recorded_by_users")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_consents_site_id_sites")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_consents_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consents_applicant_id"), ["applicant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consents_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consents_study_id"), ["study_id"], unique=False)

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=8), server_default="staff", nullable=False)
        )
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column("needs_verification", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("verified_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("verified_by", sa.Integer(), nullable=True))
        batch_op.alter_column("created_by", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_participants_verified_by_users"), "users", ["verified_by"], ["id"]
        )

    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))

    with op.batch_alter_table("survey_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))

    op.execute(
        """
        INSERT INTO consents (study_id, site_id, participant_id, version, language, method,
                              signed_at, meaning, recorded_by, created_at)
        SELECT study_id, site_id, id, consent_version, 'en', 'in_person', enrolled_at,
               'consent to take part', created_by, enrolled_at
        FROM participants WHERE consent_version IS NOT NULL AND enrolled_at IS NOT NULL
        """
    )


def downgrade() -> None:
    # People who signed up themselves were enrolled by nobody (created_by NULL): the
    # older schema cannot hold them, and inventing an enrolling user would falsify the
    # record. Refuse, plainly, rather than fail half-way on the NOT NULL.
    joined = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM participants WHERE created_by IS NULL")
    )
    if joined:
        raise RuntimeError(
            f"{joined} participants signed up through the public link; the schema before "
            "remote enrollment cannot record them. Restore a backup taken before the upgrade."
        )
    with op.batch_alter_table("survey_instances", schema=None) as batch_op:
        batch_op.drop_column("language")

    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("revision")

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_participants_verified_by_users"), type_="foreignkey"
        )
        batch_op.alter_column("created_by", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("verified_by")
        batch_op.drop_column("verified_at")
        batch_op.drop_column("needs_verification")
        batch_op.drop_column("language")
        batch_op.drop_column("source")

    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_study_id"))
        batch_op.drop_index(batch_op.f("ix_consents_participant_id"))
        batch_op.drop_index(batch_op.f("ix_consents_applicant_id"))

    op.drop_table("consents")
    with op.batch_alter_table("applicants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applicants_study_id"))
        batch_op.drop_index(batch_op.f("ix_applicants_state"))
        batch_op.drop_index(batch_op.f("ix_applicants_site_id"))
        batch_op.drop_index(batch_op.f("ix_applicants_phone_index"))
        batch_op.drop_index(batch_op.f("ix_applicants_email_index"))
        batch_op.drop_index(batch_op.f("ix_applicants_created_at"))
        batch_op.drop_index(batch_op.f("ix_applicants_address_hash"))

    op.drop_table("applicants")
