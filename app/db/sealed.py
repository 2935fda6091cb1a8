"""Research data sealed at rest: one column type for every sealed column.

`SealedText` and `SealedJSON` seal a value (AES-GCM, `Keys.seal` under `Use.research`,
bound to the column's `table.column` name) when it is written and open it when it is
read, so ORM attributes and Core rows hold plain Python values and a copy of the
database holds none. The keys are those of the engine the statement runs on: each
`Database` attaches its own (`attach_keys`), so several databases with different keys
can live in one process. A sealed column cannot be compared, grouped or ordered in SQL;
what must be looked up or kept unique has a keyed hash beside it (`keyed_hash`, a
column marked with `KEYED_HASH`), rebuilt from the opened value by `reseal`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column, Engine, LargeBinary, Table, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from app.db.base import Base
from app.db.triggers import triggers_lifted
from app.keys import Keys, Use

_KEYS_ATTRIBUTE = "trialdesk_keys"
KEYED_HASH = "trialdesk_keyed_hash"  # Column.info: the kind of value its hash is of
RESEAL_BATCH = 500
# A sealed value is as long as its plain text plus a constant, so values are padded to
# a multiple of a bucket before sealing: an arm code, an instrument list or a short
# answer would otherwise be told apart by length alone (`listserv` from `control`).
TEXT_BUCKET = 64
JSON_BUCKET = 1024
_PADDED = b"\x00"  # plain text and JSON never start with NUL (inputs refuse it)


def padded(data: bytes, bucket: int) -> bytes:
    """`data` with its length in front, then zeros up to a multiple of `bucket`."""
    body = _PADDED + len(data).to_bytes(4, "big") + data
    return body + b"\x00" * (-len(body) % bucket)


def unpadded(plain: bytes) -> bytes:
    """The data of a padded value (a value sealed before padding is returned as is)."""
    if plain[:1] != _PADDED:
        return plain
    size = int.from_bytes(plain[1:5], "big")
    return plain[5 : 5 + size]


class KeysMissing(RuntimeError):
    """A sealed column was used on an engine that was given no keys."""


def attach_keys(engine: Engine, keys: Keys) -> None:
    """Let the sealed columns of statements run on `engine` use `keys`."""
    setattr(engine.dialect, _KEYS_ATTRIBUTE, keys)


def keys_of_dialect(dialect: Dialect) -> Keys:
    """The keys attached to the engine of this dialect."""
    keys: Keys | None = getattr(dialect, _KEYS_ATTRIBUTE, None)
    if keys is None:
        raise KeysMissing(
            "sealed research data read or written on an engine without the server key; "
            "use app.db.engine.Database (or attach_keys)"
        )
    return keys


class SealedText(TypeDecorator[str]):
    """Text sealed at rest under `Use.research`, bound to `context` (`table.column`)."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        plain = padded(value.encode(), TEXT_BUCKET)
        return keys_of_dialect(dialect).seal(Use.research, plain, context=self.context)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        opened = keys_of_dialect(dialect).open(Use.research, bytes(value), context=self.context)
        return unpadded(opened).decode()


class SealedJSON(TypeDecorator[Any]):
    """A JSON document sealed at rest under `Use.research`, bound to `context`.
    Python None is SQL NULL (never a sealed JSON `null`)."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return keys_of_dialect(dialect).seal(
            Use.research, padded(plain, JSON_BUCKET), context=self.context
        )

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        opened = keys_of_dialect(dialect).open(Use.research, bytes(value), context=self.context)
        return json.loads(unpadded(opened))


class SealedBytes(TypeDecorator[bytes]):
    """A file (a signed consent's PDF) sealed at rest under `Use.research`, bound to
    `context`. Not padded: the length of a file says nothing an arm could be read from."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return keys_of_dialect(dialect).seal(Use.research, bytes(value), context=self.context)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return keys_of_dialect(dialect).open(Use.research, bytes(value), context=self.context)


def normalized(kind: str, value: str) -> str:
    """The form of a value its keyed hash is taken of: emails without case or spaces
    around, phone numbers as their digits (and a leading +)."""
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return ("+" if value.startswith("+") else "") + re.sub(r"\D", "", value)
    return value


def keyed_hash(keys: Keys, kind: str, value: str | None) -> str | None:
    """HMAC-SHA256 (under `Use.research_index`) of a normalized value, hex; None for
    None. Equal values have equal hashes, so it can be looked up or kept unique; without
    the server key it tells nothing of the value."""
    if value is None or not value.strip():
        return None
    message = f"{kind}|{normalized(kind, value)}".encode()
    return hmac.new(keys.derived(Use.research_index), message, hashlib.sha256).hexdigest()


def sealed_tables() -> Iterator[tuple[Table, list[Column[Any]], list[Column[Any]]]]:
    """Every table with sealed columns: (table, its sealed columns, its keyed hashes)."""
    for table in Base.metadata.sorted_tables:
        sealed = [c for c in table.columns if isinstance(c.type, SealedText | SealedJSON)]
        hashes = [c for c in table.columns if KEYED_HASH in c.info]
        if sealed:
            yield table, sealed, hashes


def reseal(session: Session) -> int:
    """Seal every sealed value again with the session's current keys, and rebuild the
    keyed hashes beside them, in this one transaction; the number of rows rewritten.
    `trialdesk keys rotate` runs `reseal_batch` instead, a transaction a batch."""
    rewritten = 0
    for table, _, _ in sealed_tables():
        after: Any = None
        while True:
            count, after = reseal_batch(session, table=table, after=after)
            rewritten += count
            if after is None:
                break
    return rewritten


def reseal_batch(session: Session, *, table: Table, after: Any) -> tuple[int, Any]:
    """Seal again the next `RESEAL_BATCH` rows of `table` after the key `after` (None:
    from the first), with the session's current keys, and rebuild their keyed hashes;
    the rows rewritten and the key to go on after (None: the table is done).

    The rows are read under a row lock (PostgreSQL; SQLite has one writer at a time),
    so a change another process makes meanwhile waits and is never overwritten with
    what was read before it. Append-only tables (the allocation ledger) have their
    triggers set aside within the transaction only. It covers the tables of the models
    imported (`sealed_tables`)."""
    keys = keys_of_dialect(session.get_bind().dialect)
    sealed = [c for c in table.columns if isinstance(c.type, SealedText | SealedJSON)]
    hashes = [c for c in table.columns if KEYED_HASH in c.info]
    (key,) = table.primary_key.columns
    query = select(key, *sealed).order_by(key).limit(RESEAL_BATCH).with_for_update()
    if after is not None:
        query = query.where(key > after)
    rows = session.execute(query).all()
    if not rows:
        return 0, None
    with triggers_lifted(session, table):
        for row in rows:
            values = {c.name: row[i + 1] for i, c in enumerate(sealed)}
            for column in hashes:
                source, kind = column.info[KEYED_HASH]
                values[column.name] = keyed_hash(keys, kind, values[source])
            session.execute(update(table).where(key == row[0]).values(**values))
    session.flush()
    return len(rows), rows[-1][0]
