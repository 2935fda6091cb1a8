"""Blinding keys: one per study, behind the pseudonyms and group codes of exports;
each participant's pseudonym stored, so that exports can be ordered by it.

Each study gets 256 random bits, sealed with the server key (bound to the study's
slug), in a table of its own: apart from the randomization secret, which is revealed
at lock, while the blinding key never is. Studies made before this revision get theirs
now, so migrating a database that has studies needs the server key, as the revision
that sealed the secrets did. Downgrading drops the keys and pseudonyms: upgrading
again makes new ones, so exports made before and after would not match.

Revision ID: c7d2e8f1a903
Revises: b6c1d2e3f4a5
Create Date: 2026-11-30 20:30:00.000000+00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trialdesk_migrations.frozen.db_20261125 import UTCDateTime, utcnow
from trialdesk_migrations.frozen.keys_20261130 import Keys, Use
from trialdesk_migrations.frozen.pseudonyms_20261130 import pseudonym
from trialdesk_migrations.frozen.server_key import current_server_key

revision: str = "c7d2e8f1a903"
down_revision: str | None = "b6c1d2e3f4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_BYTES = 32


def upgrade() -> None:
    blinding_keys = op.create_table(
        "blinding_keys",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"]),
        sa.PrimaryKeyConstraint("study_id"),
    )
    with op.batch_alter_table("participants") as batch_op:
        batch_op.add_column(sa.Column("pseudonym", sa.String(length=16), nullable=True))
    connection = op.get_bind()
    studies = sa.table("studies", sa.column("id", sa.Integer), sa.column("slug"))
    participants = sa.table(
        "participants",
        sa.column("id", sa.Integer),
        sa.column("study_id", sa.Integer),
        sa.column("code"),
        sa.column("pseudonym"),
    )
    rows = connection.execute(sa.select(studies.c.id, studies.c.slug)).all()
    if rows:
        _make_keys(connection, blinding_keys, participants, rows)
    with op.batch_alter_table("participants") as batch_op:
        batch_op.alter_column("pseudonym", existing_type=sa.String(length=16), nullable=False)
        batch_op.create_index("ix_participants_pseudonym", ["pseudonym"])


def _make_keys(
    connection: sa.Connection, blinding_keys: sa.Table, participants: sa.TableClause, rows: list
) -> None:
    keys = Keys(current_server_key())
    now = utcnow()
    for study_id, slug in rows:
        key = secrets.token_bytes(KEY_BYTES)
        sealed = keys.seal(Use.blinding_key, key, context=slug)
        connection.execute(
            blinding_keys.insert().values(study_id=study_id, sealed=sealed, created_at=now)
        )
        codes = connection.execute(
            sa.select(participants.c.id, participants.c.code).where(
                participants.c.study_id == study_id
            )
        ).all()
        for participant_id, code in codes:
            connection.execute(
                participants.update()
                .where(participants.c.id == participant_id)
                .values(pseudonym=pseudonym(key, code))
            )


def downgrade() -> None:
    with op.batch_alter_table("participants") as batch_op:
        batch_op.drop_index("ix_participants_pseudonym")
        batch_op.drop_column("pseudonym")
    op.drop_table("blinding_keys")
