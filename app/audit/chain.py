"""The audit chain (pure): how a record's keyed hash is computed and the chain checked.

Each record's `hash` is an HMAC-SHA256, under a key derived from the server key (never
in the database), of the record's canonical JSON (its plain reason and changes
included), the previous record's hash and the chain's id. Whoever holds the database
alone can neither recompute a hash after editing a record nor forge a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

GENESIS_HASH = "0" * 64
SCHEME = b"trialdesk audit v2"


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(value: Any) -> Any:
    """JSON values as every backend stores them: whole floats as integers (PostgreSQL's
    JSONB kept 1e16 as the integer 10000000000000000), enums as their values."""
    if isinstance(value, Enum):
        return canonical(value.value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """The one canonical JSON text: sorted keys, no spaces, unicode kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


HASHED_FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor",
    "action",
    "study_id",
    "entity_type",
    "entity_id",
    "reason",
    "changes",
    "request_id",
)
OPTIONAL_FIELDS = frozenset({"request_id"})


def record_mac(fields: Mapping[str, Any], prev_hash: str, *, key: bytes, chain_id: str) -> str:
    """HMAC-SHA256 over the canonical JSON of the record's plain fields, the previous
    hash and the chain's id (hex). `request_id` is covered only when it has a value."""
    payload = {k: v for k, v in fields.items() if not (k in OPTIONAL_FIELDS and v is None)}
    payload["at"] = canonical_time(payload["at"])
    payload["prev_hash"] = prev_hash
    message = SCHEME + b"\x00" + chain_id.encode() + b"\x00" + dumps(payload).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sealed_document(*, reason: str | None, changes: Mapping[str, Any]) -> bytes:
    """What is sealed at rest of a record: its reason and changes, as canonical JSON."""
    return dumps({"changes": changes, "reason": reason}).encode("utf-8")


def seal_context(seq: int) -> str:
    """A record's sealed part opens only at its own seq (the HMAC, which covers the
    chain's id too, tells a part moved from another database)."""
    return f"audit record {seq}"


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def check_chain(
    records: Iterable[Mapping[str, Any]], *, key: bytes | Sequence[bytes], chain_id: str
) -> list[ChainBreak]:
    """Every break in the chain: a gap in seq, a wrong link, a sealed part that does not
    open (`reason` is then the `UNREADABLE` marker) or a hash that does not match."""
    keys = [key] if isinstance(key, bytes) else list(key)  # any of them (a key rotation)
    breaks: list[ChainBreak] = []
    expected_seq, prev_hash = 1, GENESIS_HASH
    for rec in records:
        seq = rec["seq"]
        if seq != expected_seq:
            breaks.append(ChainBreak(seq, f"expected record {expected_seq}, found {seq}"))
        if rec["prev_hash"] != prev_hash:
            breaks.append(ChainBreak(seq, "prev_hash does not match the record before"))
        if rec.get("unreadable"):
            breaks.append(ChainBreak(seq, "its sealed reason and changes do not open"))
        else:
            fields = {name: rec[name] for name in HASHED_FIELDS}
            if not any(
                hmac.compare_digest(
                    record_mac(fields, rec["prev_hash"], key=one, chain_id=chain_id), rec["hash"]
                )
                for one in keys
            ):
                breaks.append(ChainBreak(seq, "content does not match its hash"))
        expected_seq, prev_hash = seq + 1, rec["hash"]
    return breaks
