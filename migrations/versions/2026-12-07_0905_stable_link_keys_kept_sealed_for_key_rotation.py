"""The stable keys (survey links, console links and forms) kept in the database, sealed
with the server key, so that `trialdesk keys rotate` keeps links already handed out.

The column starts empty: the first start after this revision stores the keys the
current server key derives (what every link so far was made with).

Revision ID: 5c1e0a9d7b42
Revises: 5e3a9c1d7b04
Create Date: 2026-12-07 09:05:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e0a9d7b42"
down_revision: str | None = "5e3a9c1d7b04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("server_key") as batch_op:
        batch_op.add_column(sa.Column("stable_keys", sa.LargeBinary(), nullable=True))


# Values sealed since this release name their key (format 2: b"\x02", a 4-byte key id,
# then the nonce and ciphertext of format 1, made with the same derived keys). The
# revisions that sealed study secrets and blinding keys only read format 1, so a
# downgrade writes those back in it (the frozen code of the later revisions reads
# both). A value sealed under a key rotated in since cannot open with the older
# revisions' single key anyway: downgrading after a rotation is not supported.
_FORMAT_2, _FORMAT_1, _KEY_ID_BYTES = b"\x02", b"\x01", 4
_SEALED_COLUMNS = (
    ("studies", "id", "secret"),
    ("blinding_keys", "study_id", "sealed"),
)


def downgrade() -> None:
    connection = op.get_bind()
    for table_name, key_name, column_name in _SEALED_COLUMNS:
        table = sa.table(table_name, sa.column(key_name, sa.Integer), sa.column(column_name))
        key, column = table.c[key_name], table.c[column_name]
        for row_id, value in connection.execute(sa.select(key, column)).all():
            value = bytes(value)
            if value[:1] == _FORMAT_2:
                connection.execute(
                    table.update()
                    .where(key == row_id)
                    .values({column_name: _FORMAT_1 + value[1 + _KEY_ID_BYTES :]})
                )
    # Stored answers of retried requests are a cache of at most a day: drop those sealed
    # in format 2 rather than teach older revisions to read them.
    connection.execute(sa.text("DELETE FROM idempotency_keys WHERE response_body IS NOT NULL"))
    with op.batch_alter_table("server_key") as batch_op:
        batch_op.drop_column("stable_keys")
