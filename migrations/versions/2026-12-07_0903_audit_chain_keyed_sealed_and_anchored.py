"""The audit chain keyed (HMAC) and its records' reason and changes sealed at rest.

Each record's hash becomes an HMAC-SHA256 under a key derived from the server key, over
the plain record, the previous hash and the chain's new id (`audit_chain_head.chain_id`,
which also names the chain's anchors outside the database). The reason and changes
(answers, contact details, notes) move into `sealed` (AES-GCM, bound to the seq).

Existing records are re-MACed here (one scheme, no marker). The old SHA-256 chain is
checked as it goes: a record that does not verify in it is not laundered, it gets a
hash that does not verify in the new chain either (`verify` names its seq; the link to
the next record holds, so only that record is flagged). A database with records needs
the server key to migrate. The crypto is a frozen copy (`migrations/frozen/audit_v2.py`).
Downgrading opens the sealed parts and rebuilds the plain SHA-256 chain.

Revision ID: 0d3a9c1e7b42
Revises: fc929eb8918c
Create Date: 2026-12-07 09:03:00.000000+00:00
"""

import logging
import uuid
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import trialdesk_migrations.frozen.audit_v2 as audit_v2
from trialdesk_migrations.frozen.server_key import current_server_key

revision: str = "0d3a9c1e7b42"
down_revision: str | None = "fc929eb8918c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _frozen() -> ModuleType:
    return audit_v2


def _records(*, plain: bool) -> sa.TableClause:
    columns = [
        sa.column("seq", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor_id", sa.Integer),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("study_id", sa.Integer),
        sa.column("entity_type", sa.String),
        sa.column("entity_id", sa.String),
        sa.column("request_id", sa.String),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
        sa.column("sealed", sa.LargeBinary),
    ]
    if plain:
        columns += [sa.column("reason", sa.String), sa.column("changes", JSON)]
    return sa.table("audit_records", *columns)


HEAD = sa.table(
    "audit_chain_head",
    sa.column("id", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("hash", sa.String),
    sa.column("chain_id", sa.String),
)
FIELDS = audit_v2.HASHED_FIELDS


def _rows(table: sa.TableClause) -> Iterator[dict[str, Any]]:
    """Every record in seq order, 1000 at a time (updates run between the reads)."""
    connection, last = op.get_bind(), 0
    while True:
        rows = (
            connection.execute(
                sa.select(table).where(table.c.seq > last).order_by(table.c.seq).limit(1000)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        yield from (dict(row) for row in rows)
        last = rows[-1]["seq"]


def _server_key() -> bytes:
    return current_server_key()


def _allow_updates(allow: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        verb = "DISABLE" if allow else "ENABLE"
        op.execute(f"ALTER TABLE audit_records {verb} TRIGGER audit_records_append_only")
        return
    for event in ("UPDATE", "DELETE"):
        if allow:
            op.execute(f"DROP TRIGGER IF EXISTS audit_records_no_{event.lower()}")
        else:
            op.execute(
                f"CREATE TRIGGER audit_records_no_{event.lower()} BEFORE {event} ON audit_records "
                "BEGIN SELECT RAISE(ABORT, 'audit_records is append-only'); END"
            )


def upgrade() -> None:
    op.add_column("audit_chain_head", sa.Column("chain_id", sa.String(length=32), nullable=True))
    op.add_column("audit_records", sa.Column("sealed", sa.LargeBinary(), nullable=True))
    op.create_index(
        "ix_audit_records_study_id_entity_id", "audit_records", ["study_id", "entity_id"]
    )
    _allow_updates(True)
    connection = op.get_bind()
    if connection.execute(sa.select(sa.func.count()).select_from(_records(plain=True))).scalar():
        frozen = _frozen()
        key = _server_key()
        mac_key = frozen.derive(key, frozen.AUDIT_CHAIN)
        seal_key = frozen.derive(key, frozen.AUDIT_RECORD)
        chain_id = uuid.uuid4().hex
        table = _records(plain=True)
        old_prev = new_prev = frozen.GENESIS_HASH
        expected = 1
        broken: list[int] = []
        for row in _rows(table):
            fields = {name: row[name] for name in FIELDS}
            digest = frozen.record_mac(fields, new_prev, key=mac_key, chain_id=chain_id)
            if (
                row["seq"] != expected
                or row["prev_hash"] != old_prev
                or frozen.sha256_hash(fields, row["prev_hash"]) != row["hash"]
            ):
                # Not laundered: a record that did not verify in the old chain gets a
                # hash that does not verify in the new one either (verify names it).
                digest = frozen.unverified_mark(mac_key, row["hash"])
                broken.append(row["seq"])
            sealed = frozen.seal(
                seal_key,
                frozen.AUDIT_RECORD,
                frozen.sealed_document(reason=row["reason"], changes=row["changes"]),
                context=frozen.seal_context(row["seq"]),
            )
            connection.execute(
                table.update()
                .where(table.c.seq == row["seq"])
                .values(sealed=sealed, prev_hash=new_prev, hash=digest)
            )
            old_prev, new_prev, expected = row["hash"], digest, row["seq"] + 1
        connection.execute(
            HEAD.update().where(HEAD.c.id == 1).values(hash=new_prev, chain_id=chain_id)
        )
        if broken:
            logging.getLogger("alembic.runtime.migration").warning(
                "audit records that did not verify in the old chain (kept unverifiable, "
                "`trialdesk verify` names them): %s",
                ", ".join(map(str, broken[:50])),
            )
    with op.batch_alter_table("audit_records") as batch_op:
        batch_op.drop_column("reason")
        batch_op.drop_column("changes")
        batch_op.alter_column("sealed", existing_type=sa.LargeBinary(), nullable=False)
    _allow_updates(False)


def downgrade() -> None:
    with op.batch_alter_table("audit_records") as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("changes", JSON, nullable=True))
    _allow_updates(True)
    connection = op.get_bind()
    table = _records(plain=True)
    if connection.execute(sa.select(sa.func.count()).select_from(table)).scalar():
        import json

        frozen = _frozen()
        seal_key = frozen.derive(_server_key(), frozen.AUDIT_RECORD)
        prev = frozen.GENESIS_HASH
        for row in _rows(_records(plain=False)):
            plain = json.loads(
                frozen.open_sealed(
                    seal_key,
                    frozen.AUDIT_RECORD,
                    bytes(row["sealed"]),
                    context=frozen.seal_context(row["seq"]),
                )
            )
            fields = {name: row.get(name) for name in FIELDS} | plain
            digest = frozen.sha256_hash(fields, prev)
            connection.execute(
                table.update()
                .where(table.c.seq == row["seq"])
                .values(
                    reason=plain["reason"], changes=plain["changes"], prev_hash=prev, hash=digest
                )
            )
            prev = digest
        connection.execute(HEAD.update().where(HEAD.c.id == 1).values(hash=prev))
    op.drop_index("ix_audit_records_study_id_entity_id", table_name="audit_records")
    with op.batch_alter_table("audit_records") as batch_op:
        batch_op.alter_column("changes", existing_type=JSON, nullable=False)
        batch_op.drop_column("sealed")
    _allow_updates(False)
    with op.batch_alter_table("audit_chain_head") as batch_op:
        batch_op.drop_column("chain_id")
