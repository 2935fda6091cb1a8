"""Keys derived from the server key, and sealing (AES-GCM) of what is kept at rest.

Each use has its own key, derived from the server key with HKDF-SHA256 and the use's
name, so one leaked derived key opens nothing else. A sealed value is bound to where it
belongs (`context`: a study's slug, an Idempotency-Key's scope), so it cannot be moved
to another row and still open.
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
    study_secret = "study secret"  # the randomization secret of each study
    blinding_key = "blinding key"  # the per-study key behind pseudonyms and group codes
    idempotency = "idempotency"  # stored answers of requests with an Idempotency-Key
    survey_link = "survey link"  # the personal links of surveys, and their forms
    fingerprint = "fingerprint"  # recognizing the key without keeping it
    console = "console"  # sign-in links and the forms of the staff console
    research = "research data"  # sealed columns: contacts, answers, scores, notes, arms
    research_index = "research index"  # keyed hashes beside sealed columns, for look-ups


class WrongKey(Exception):
    """A sealed value does not open with this server key (or was altered)."""


class Keys:
    """The keys derived from one server key."""

    def __init__(self, server_key: bytes) -> None:
        self._derived = {use: _derive(server_key, use) for use in Use}
        self.checked = False  # whether the database has been seen to use this key

    @property
    def fingerprint(self) -> str:
        """A value that recognizes the server key and reveals nothing of it."""
        return hmac.new(self._derived[Use.fingerprint], b"trialdesk", hashlib.sha256).hexdigest()

    def derived(self, use: Use) -> bytes:
        """The key derived for `use` (for HMACs: survey links)."""
        return self._derived[use]

    def seal(self, use: Use, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt and authenticate `plaintext` for `use`, bound to `context`."""
        nonce = os.urandom(NONCE_BYTES)
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
