"""Research data sealed at rest; keyed hashes for look-ups; no stored pseudonyms.

A copy of the database used to show contacts, every answer and score, alert texts,
rules (which tell the answer that raised them) and notes, withdrawal reasons, mail
errors (which can name an address), the instruments chosen for each survey (arm-limited
ones tell arms apart), the arm of each allocation and the whole
allocation table. Each of these columns now holds its value sealed (AES-GCM under a
key derived from the server key, bound to "table.column"), written here for the rows
that exist. Contacts get keyed hashes of email and phone (HMAC under another derived
key) for exact look-ups. Participants lose their stored
pseudonym (exports compute it from the study's blinding key) and get `export_order`,
another keyed hash of the code under that key, which exports are ordered by.

Migrating a database that holds such rows needs the server key (as the revision that
sealed the secrets did). The crypto is a frozen copy (`migrations/frozen/sealing_v1`),
never the application's. The allocation ledger is append-only: on PostgreSQL its
trigger is set aside for the rewrite; on SQLite, which alters a column by copying the
table, its triggers are made again. Downgrading opens every value again.

Revision ID: 5e3a9c1d7b04
Revises: 0d3a9c1e7b42
Create Date: 2026-12-07 09:04:00.000000+00:00
"""

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

import trialdesk_migrations.frozen.sealing_v1 as v1
from trialdesk_migrations.frozen.server_key import current_server_key

revision: str = "5e3a9c1d7b04"
down_revision: str | None = "0d3a9c1e7b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")

# table → (primary key, [(column, "text" | "json", type before, its length)])
SEALED: dict[str, tuple[str, list[tuple[str, str, Any]]]] = {
    "contacts": (
        "participant_id",
        [("name", "text", 200), ("email", "text", 320), ("phone", "text", 64)],
    ),
    "participants": ("id", [("withdrawal_reason", "text", 2000)]),
    "allocations": ("id", [("arm", "text", 64)]),
    "allocation_table_rows": ("id", [("arm", "text", 64)]),
    "survey_instances": (
        "id",
        [("instruments", "json", None), ("answers", "json", None), ("scores", "json", None)],
    ),
    "survey_alerts": (
        "id",
        [("rule", "text", 64), ("text", "text", 2000), ("note", "text", 2000)],
    ),
    "outbox_messages": ("id", [("last_error", "text", 500)]),
}
INDEXED = {"email": "email_index", "phone": "phone_index"}  # contacts: column → its hash


class _ServerKey:
    """The server key, looked up only when a row needs it."""

    def __init__(self) -> None:
        self._key: bytes | None = None

    def __call__(self) -> bytes:
        if self._key is None:
            self._key = current_server_key()
        return self._key


def _old_type(kind: str, length: int | None) -> Any:
    return JSON_TYPE if kind == "json" else sa.String(length)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _rows(table: str, key: str, columns: list[str]) -> Iterator[Sequence[Any]]:
    """Every row's key and columns (raw, untyped), in batches by key."""
    connection = op.get_bind()
    t = sa.table(table, sa.column(key), *(sa.column(c) for c in columns))
    last = None
    while True:
        query = sa.select(t.c[key], *(t.c[c] for c in columns)).order_by(t.c[key]).limit(BATCH)
        if last is not None:
            query = query.where(t.c[key] > last)
        rows = connection.execute(query).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw if isinstance(raw, str) else bytes(raw).decode()


def _rewrite(table: str, change: Callable[[str, str, Any], tuple[Any, dict[str, Any]]]) -> None:
    """Write `change(column, kind, raw value)` → (new value, other columns) in every row."""
    key, columns = SEALED[table]
    connection = op.get_bind()
    names = [c for c, _, _ in columns]
    t = sa.table(
        table,
        sa.column(key),
        *(sa.column(c) for c in names),
        *(sa.column(i) for i in INDEXED.values() if table == "contacts"),
    )
    for row in _rows(table, key, names):
        values: dict[str, Any] = {}
        for (column, kind, _), raw in zip(columns, row[1:], strict=True):
            values[column], extra = change(column, kind, raw)
            values.update(extra)
        connection.execute(t.update().where(t.c[key] == row[0]).values(**values))


def upgrade() -> None:
    server_key = _ServerKey()
    research = _Derived(server_key, v1.RESEARCH)
    index = _Derived(server_key, v1.RESEARCH_INDEX)
    with op.batch_alter_table("contacts") as batch_op:
        for column in INDEXED.values():
            batch_op.add_column(sa.Column(column, sa.String(64), nullable=True))
            batch_op.create_index(f"ix_contacts_{column}", [column])

    for table, (_, columns) in SEALED.items():
        _set_types(table, [(c, sa.LargeBinary()) for c, _, _ in columns], before=columns)

        def seal(column: str, kind: str, raw: Any, table: str = table) -> tuple[Any, dict]:
            plain = _text(raw)
            if plain is None:
                return None, {}
            extra = {}
            if table == "contacts" and column in INDEXED:
                extra[INDEXED[column]] = v1.keyed_hash(index(), column, plain)
            data = v1.json_bytes(json.loads(plain)) if kind == "json" else plain.encode()
            if kind == "json" and json.loads(plain) is None:
                return None, extra
            bucket = v1.JSON_BUCKET if kind == "json" else v1.TEXT_BUCKET
            sealed = v1.seal(
                research(), v1.RESEARCH, v1.padded(data, bucket), context=f"{table}.{column}"
            )
            return sealed, extra

        with _append_only_lifted(table):
            _rewrite(table, seal)

    _export_order_for_pseudonym(server_key)


def downgrade() -> None:
    server_key = _ServerKey()
    research = _Derived(server_key, v1.RESEARCH)
    for table, (_, columns) in SEALED.items():

        def unseal(column: str, kind: str, raw: Any, table: str = table) -> tuple[Any, dict]:
            if raw is None:
                return None, {}
            opened = v1.open_sealed(
                research(), v1.RESEARCH, bytes(raw), context=f"{table}.{column}"
            )
            plain = v1.unpadded(opened)
            return (plain if _postgresql() else plain.decode()), {}

        with _append_only_lifted(table):
            _rewrite(table, unseal)
        _set_types(table, [(c, _old_type(k, n)) for c, k, n in columns], before=None)
    with op.batch_alter_table("contacts") as batch_op:
        for column in INDEXED.values():
            batch_op.drop_index(f"ix_contacts_{column}")
            batch_op.drop_column(column)
    _pseudonym_for_export_order(server_key)


class _Derived:
    def __init__(self, server_key: _ServerKey, use: str) -> None:
        self.server_key, self.use = server_key, use
        self._key: bytes | None = None

    def __call__(self) -> bytes:
        if self._key is None:
            self._key = v1.derive(self.server_key(), self.use)
        return self._key


def _set_types(
    table: str, changes: list[tuple[str, Any]], *, before: list[tuple[str, str, Any]] | None
) -> None:
    """Give columns their new types, keeping what they hold (as bytes going to
    LargeBinary; as text, or JSON, coming back)."""
    if _postgresql():
        for column, new in changes:
            if isinstance(new, sa.LargeBinary):
                using = f"convert_to({column}::text, 'UTF8')"
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE bytea USING {using}")
            elif isinstance(new, sa.String):
                using = f"convert_from({column}, 'UTF8')"
                op.execute(
                    f"ALTER TABLE {table} ALTER COLUMN {column} "
                    f"TYPE varchar({new.length}) USING {using}"
                )
            else:
                using = f"convert_from({column}, 'UTF8')::jsonb"
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE jsonb USING {using}")
        return
    _drop_sqlite_triggers(table)
    with op.batch_alter_table(table) as batch_op:
        for column, new in changes:
            batch_op.alter_column(column, type_=new)
    _make_sqlite_triggers(table)


class _append_only_lifted:
    """The ledger's append-only trigger set aside on PostgreSQL while rows are rewritten
    (SQLite's triggers are dropped and made again around each rewrite)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.lifted = table == "allocations"

    def __enter__(self) -> None:
        if not self.lifted:
            return
        if _postgresql():
            op.execute("ALTER TABLE allocations DISABLE TRIGGER allocations_append_only")
        else:
            _drop_sqlite_triggers(self.table)

    def __exit__(self, *_: object) -> None:
        if not self.lifted:
            return
        if _postgresql():
            op.execute("ALTER TABLE allocations ENABLE TRIGGER allocations_append_only")
        else:
            _make_sqlite_triggers(self.table)


def _drop_sqlite_triggers(table: str) -> None:
    if table == "allocations":
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS allocations_no_{event}")


def _make_sqlite_triggers(table: str) -> None:
    if table == "allocations":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER allocations_no_{event.lower()} BEFORE {event} ON allocations "
                "BEGIN SELECT RAISE(ABORT, 'allocations is append-only'); END"
            )


def _blinding_keys(server_key: _ServerKey) -> Iterator[tuple[int, bytes]]:
    """Each study's id and its blinding key, opened."""
    connection = op.get_bind()
    studies = sa.table("studies", sa.column("id", sa.Integer), sa.column("slug"))
    keys = sa.table("blinding_keys", sa.column("study_id", sa.Integer), sa.column("sealed"))
    rows = connection.execute(
        sa.select(studies.c.id, studies.c.slug, keys.c.sealed).join(
            keys, keys.c.study_id == studies.c.id
        )
    ).all()
    if not rows:
        return
    sealing = v1.derive(server_key(), v1.BLINDING_KEY)
    for study_id, slug, sealed in rows:
        yield study_id, v1.open_sealed(sealing, v1.BLINDING_KEY, bytes(sealed), context=slug)


def _participant_column(server_key: _ServerKey, column: str, make: Callable) -> None:
    """Fill `column` of every participant with `make(blinding key, code)`."""
    connection = op.get_bind()
    participants = sa.table(
        "participants",
        sa.column("id", sa.Integer),
        sa.column("study_id", sa.Integer),
        sa.column("code"),
        sa.column(column),
    )
    for study_id, key in _blinding_keys(server_key):
        last = 0
        while True:
            rows = connection.execute(
                sa.select(participants.c.id, participants.c.code)
                .where(participants.c.study_id == study_id, participants.c.id > last)
                .order_by(participants.c.id)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            for participant_id, code in rows:
                connection.execute(
                    participants.update()
                    .where(participants.c.id == participant_id)
                    .values({column: make(key, code)})
                )
            last = rows[-1][0]


def _export_order_for_pseudonym(server_key: _ServerKey) -> None:
    with op.batch_alter_table("participants") as batch_op:
        batch_op.add_column(sa.Column("export_order", sa.String(64), nullable=True))
    _participant_column(server_key, "export_order", v1.export_order)
    with op.batch_alter_table("participants") as batch_op:
        batch_op.alter_column("export_order", existing_type=sa.String(64), nullable=False)
        batch_op.create_index("ix_participants_export_order", ["export_order"])
        batch_op.drop_index("ix_participants_pseudonym")
        batch_op.drop_column("pseudonym")


def _pseudonym_for_export_order(server_key: _ServerKey) -> None:
    with op.batch_alter_table("participants") as batch_op:
        batch_op.add_column(sa.Column("pseudonym", sa.String(16), nullable=True))
    _participant_column(server_key, "pseudonym", v1.pseudonym)
    with op.batch_alter_table("participants") as batch_op:
        batch_op.alter_column("pseudonym", existing_type=sa.String(16), nullable=False)
        batch_op.create_index("ix_participants_pseudonym", ["pseudonym"])
        batch_op.drop_index("ix_participants_export_order")
        batch_op.drop_column("export_order")
