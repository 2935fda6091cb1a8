"""Frozen copy of the crypto the 2026-12-07 09:03 revision (keyed, sealed audit chain)
needs, as it was that day: a migration must give the same result whatever the app's
code later becomes. Standard library and `cryptography` only; no import of `app`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

GENESIS_HASH = "0" * 64
SCHEME = b"trialdesk audit v2"
SEAL_VERSION = b"\x01"
# Sealed since the key ring (revision 5c1e0a9d7b42): b"\x02" + a 4-byte key id + the
# rest of format 1. A downgrade below that revision meets such values.
KEYED_SEAL_VERSION, KEY_ID_BYTES = b"\x02", 4
NONCE_BYTES = 12
AUDIT_CHAIN = "audit chain"
AUDIT_RECORD = "audit record"
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


def derive(server_key: bytes, use: str) -> bytes:
    """HKDF-SHA256 of the server key for one use (as app.keys did on that day)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"trialdesk " + use.encode())
    return hkdf.derive(server_key)


def seal(key: bytes, use: str, plaintext: bytes, *, context: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    aad = use.encode() + b"\x00" + context.encode()
    return SEAL_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, use: str, sealed: bytes, *, context: str) -> bytes:
    if sealed[:1] == KEYED_SEAL_VERSION:  # the key ring's format: a key id, then as v1
        sealed = SEAL_VERSION + sealed[1 + KEY_ID_BYTES :]
    if sealed[:1] != SEAL_VERSION:
        raise ValueError("not a value sealed in the format of 2026-12-07")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    aad = use.encode() + b"\x00" + context.encode()
    return AESGCM(key).decrypt(nonce, body, aad)


def seal_context(seq: int) -> str:
    return f"audit record {seq}"


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_time(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _payload(fields: dict[str, Any], prev_hash: str) -> str:
    payload = {k: v for k, v in fields.items() if not (k in OPTIONAL_FIELDS and v is None)}
    payload["at"] = canonical_time(payload["at"])
    payload["prev_hash"] = prev_hash
    return dumps(payload)


def sha256_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """The hash of the plain SHA-256 chain, before this revision."""
    return hashlib.sha256(_payload(fields, prev_hash).encode("utf-8")).hexdigest()


def record_mac(fields: dict[str, Any], prev_hash: str, *, key: bytes, chain_id: str) -> str:
    """The keyed hash of the chain from this revision on."""
    message = SCHEME + b"\x00" + chain_id.encode() + b"\x00" + _payload(fields, prev_hash).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sealed_document(*, reason: str | None, changes: Any) -> bytes:
    return dumps({"changes": changes, "reason": reason}).encode("utf-8")


def unverified_mark(key: bytes, old_hash: str) -> str:
    """The hash given to a record that did not verify in the old chain: never its MAC."""
    message = b"trialdesk audit: did not verify in the sha-256 chain\x00" + old_hash.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
