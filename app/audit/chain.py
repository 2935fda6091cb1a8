"""The audit hash chain (pure): how a record's hash is computed and checked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(value: Any) -> Any:
    """JSON values as every backend stores them: PostgreSQL's JSONB keeps numbers as
    exact decimals, so 1e16 comes back as the integer 10000000000000000; whole floats
    are therefore stored (and hashed) as integers, or a trail would fail verification
    on PostgreSQL alone. Enums are stored as their values."""
    if isinstance(value, Enum):
        return canonical(value.value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def record_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 over the canonical JSON of the record's fields and the previous hash.

    Fields added after the first records (`OPTIONAL_FIELDS`) are hashed only when they
    have a value, so records made before them keep their hashes.
    """
    payload = {k: v for k, v in fields.items() if not (k in OPTIONAL_FIELDS and v is None)}
    payload["at"] = canonical_time(payload["at"])
    payload["prev_hash"] = prev_hash
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def check_chain(records: Iterable[Mapping[str, Any]]) -> list[ChainBreak]:
    """Every break in the chain: a gap in seq, a wrong link or a hash that does not match."""
    breaks: list[ChainBreak] = []
    expected_seq, prev_hash = 1, GENESIS_HASH
    for rec in records:
        seq = rec["seq"]
        if seq != expected_seq:
            breaks.append(ChainBreak(seq, f"expected record {expected_seq}, found {seq}"))
        if rec["prev_hash"] != prev_hash:
            breaks.append(ChainBreak(seq, "prev_hash does not match the record before"))
        fields = {name: rec[name] for name in HASHED_FIELDS}
        if record_hash(fields, rec["prev_hash"]) != rec["hash"]:
            breaks.append(ChainBreak(seq, "content does not match its hash"))
        expected_seq, prev_hash = seq + 1, rec["hash"]
    return breaks
