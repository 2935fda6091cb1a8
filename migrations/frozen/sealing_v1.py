"""The sealing of research data as revision 2026-12-07 0904 knows it (frozen).

A copy, not an import, of what that revision needs from `app.keys`, `app.db.sealed`
and `app.studies.pseudonyms`: the application may change its formats later (key ids in
the seal's header, another hash), but a revision must do tomorrow exactly what it did
the day it was written. `tests/test_frozen_sealing.py` holds known answers for it.

- Derived keys: HKDF-SHA256 of the server key, no salt, info "trialdesk <use>".
- Sealed value: b"\\x01" + 12-byte nonce + AES-GCM(ciphertext + tag), with associated
  data "<use>\\x00<context>"; the context of a research column is "table.column".
- Sealed JSON: the document as compact UTF-8 JSON (`ensure_ascii=False`).
- Keyed hash: hex HMAC-SHA256(derived "research index", "<kind>|<normalized>").
- Export order: hex HMAC-SHA256(study blinding key, "order|<participant code>").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"
# Sealed since the key ring (revision 5c1e0a9d7b42): b"\x02" + a 4-byte key id + the
# rest of version 1. A downgrade below that revision meets such values.
KEYED_VERSION, KEY_ID_BYTES = b"\x02", 4
NONCE_BYTES = 12
RESEARCH = "research data"
RESEARCH_INDEX = "research index"
BLINDING_KEY = "blinding key"


class WrongKey(Exception):
    """A sealed value does not open with this server key."""


def derive(server_key: bytes, use: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"trialdesk " + use.encode())
    return hkdf.derive(server_key)


def fingerprint(server_key: bytes) -> str:
    key = derive(server_key, "fingerprint")
    return hmac.new(key, b"trialdesk", hashlib.sha256).hexdigest()


def seal(
    key: bytes, use: str, plaintext: bytes, *, context: str, nonce: bytes | None = None
) -> bytes:
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    aad = use.encode() + b"\x00" + context.encode()
    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, use: str, sealed: bytes, *, context: str) -> bytes:
    if sealed[:1] == KEYED_VERSION:  # the key ring's format: a key id, then as version 1
        sealed = VERSION + sealed[1 + KEY_ID_BYTES :]
    if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
        raise WrongKey("not a value sealed by Trialdesk (version 1)")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, use.encode() + b"\x00" + context.encode())
    except InvalidTag:
        raise WrongKey("sealed with another server key, or altered") from None


TEXT_BUCKET, JSON_BUCKET = 64, 1024


def padded(data: bytes, bucket: int) -> bytes:
    """`data` with its length in front, then zeros up to a multiple of `bucket`."""
    body = b"\x00" + len(data).to_bytes(4, "big") + data
    return body + b"\x00" * (-len(body) % bucket)


def unpadded(plain: bytes) -> bytes:
    """The data of a padded value (an unpadded one as is)."""
    if plain[:1] != b"\x00":
        return plain
    return plain[5 : 5 + int.from_bytes(plain[1:5], "big")]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def normalized(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return ("+" if value.startswith("+") else "") + re.sub(r"\D", "", value)
    return value


def keyed_hash(index_key: bytes, kind: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    message = f"{kind}|{normalized(kind, value)}".encode()
    return hmac.new(index_key, message, hashlib.sha256).hexdigest()


def export_order(blinding_key: bytes, participant_code: str) -> str:
    return hmac.new(blinding_key, b"order|" + participant_code.encode(), hashlib.sha256).hexdigest()


def pseudonym(blinding_key: bytes, participant_code: str) -> str:
    digest = hmac.new(blinding_key, b"pseudonym|" + participant_code.encode(), hashlib.sha256)
    return "P" + base64.b32encode(digest.digest()).decode()[:12]
