"""Frozen copy of app/keys.py as of 2026-11-30 (seal format 1): never edit.

Keys derived from the server key (HKDF-SHA256, info "trialdesk <use>") and sealing with
AES-GCM: format byte 0x01, a 12-byte nonce, the ciphertext and its tag, the additional
data being "<use>\\0<context>". Used by the revisions of 2026-11-30 that seal study
secrets and blinding keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"
NONCE_BYTES = 12


class Use(StrEnum):
    study_secret = "study secret"
    blinding_key = "blinding key"
    idempotency = "idempotency"
    survey_link = "survey link"
    fingerprint = "fingerprint"
    console = "console"


class WrongKey(Exception):
    """A sealed value does not open with this server key (or was altered)."""


class Keys:
    """The keys derived from one server key."""

    def __init__(self, server_key: bytes) -> None:
        self._derived = {use: _derive(server_key, use) for use in Use}

    @property
    def fingerprint(self) -> str:
        """A value that recognizes the server key and reveals nothing of it."""
        return hmac.new(self._derived[Use.fingerprint], b"trialdesk", hashlib.sha256).hexdigest()

    def derived(self, use: Use) -> bytes:
        """The key derived for `use`."""
        return self._derived[use]

    def seal(
        self, use: Use, plaintext: bytes, *, context: str, nonce: bytes | None = None
    ) -> bytes:
        """Encrypt and authenticate `plaintext` for `use`, bound to `context` (a random
        nonce unless one is given: the known-answer tests give one)."""
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"a nonce has {NONCE_BYTES} bytes")
        sealed = AESGCM(self._derived[use]).encrypt(nonce, plaintext, _aad(use, context))
        return VERSION + nonce + sealed

    def open(self, use: Use, sealed: bytes, *, context: str) -> bytes:
        """The plaintext of a sealed value; WrongKey if it does not open."""
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
            raise WrongKey("not a value sealed by Trialdesk")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return AESGCM(self._derived[use]).decrypt(nonce, body, _aad(use, context))
        except InvalidTag:
            raise WrongKey("sealed with another server key, or altered") from None


def _derive(server_key: bytes, use: Use) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"trialdesk " + use.encode())
    return hkdf.derive(server_key)


def _aad(use: Use, context: str) -> bytes:
    return use.encode() + b"\x00" + context.encode()
