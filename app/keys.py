"""Keys derived from the server key, and sealing (AES-GCM) of what is kept at rest.

Each use has its own key, derived from the server key with HKDF-SHA256 and the use's
name, so one leaked derived key opens nothing else. A sealed value is bound to where it
belongs (`context`: a study's slug, an Idempotency-Key's scope), so it cannot be moved
to another row and still open.

Keys can be rotated (`app.rotation`), so a `Keys` holds a ring of server keys: the
current one seals, any of them opens. A sealed value names the key that sealed it by a
short id (the first 4 bytes of its fingerprint):

    version 2: b"\\x02" + key id (4 bytes) + nonce (12) + AES-GCM ciphertext and tag
    version 1: b"\\x01" + nonce (12) + ciphertext and tag (before rotation existed;
               opened with any key of the ring, oldest first)

A value whose key id is not in the ring makes the ring re-read its source once (the key
file: another process may have rotated the key meanwhile).

Two uses are "stable": the HMAC keys behind survey links and the console's sign-in
links and forms (`STABLE`). Links already emailed must keep working after a rotation,
so these keys are kept in the database, sealed with the server key (`server_key`
table), and re-sealed, unchanged, by a rotation; `pin` puts them into the ring.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x02"
VERSION_1 = b"\x01"
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16


class Use(StrEnum):
    study_secret = "study secret"  # the randomization secret of each study
    blinding_key = "blinding key"  # the per-study key behind pseudonyms and group codes
    idempotency = "idempotency"  # stored answers of requests with an Idempotency-Key
    survey_link = "survey link"  # the personal links of surveys, and their forms
    fingerprint = "fingerprint"  # recognizing the key without keeping it
    console = "console"  # sign-in links and the forms of the staff console
    stable_keys = "stable keys"  # the stable keys below, as kept in the database
    audit_chain = "audit chain"  # the HMAC of each audit record (the keyed hash chain)
    audit_record = "audit record"  # the sealed reason and changes of each audit record
    audit_anchor = "audit anchor"  # the signed checkpoints of the chain's head
    research = "research data"  # sealed columns: contacts, answers, scores, notes, arms
    research_index = "research index"  # keyed hashes beside sealed columns, for look-ups


# HMAC keys whose outputs are handed out (links in emails, forms in browsers): they stay
# the same across rotations (see the module's docstring).
STABLE: tuple[Use, ...] = (Use.survey_link, Use.console)


class WrongKey(Exception):
    """A sealed value does not open with this server key (or was altered)."""


@dataclass(frozen=True)
class _Key:
    """One server key and what is derived from it."""

    derived: Mapping[Use, bytes]
    fingerprint: str

    @property
    def id(self) -> bytes:
        return bytes.fromhex(self.fingerprint[: 2 * KEY_ID_BYTES])

    @classmethod
    def of(cls, server_key: bytes) -> _Key:
        derived = {use: _derive(server_key, use) for use in Use}
        mark = hmac.new(derived[Use.fingerprint], b"trialdesk", hashlib.sha256).hexdigest()
        return cls(derived=derived, fingerprint=mark)


@dataclass(frozen=True)
class _Ring:
    keys: tuple[_Key, ...]  # oldest first
    current: _Key

    def by_id(self, key_id: bytes) -> _Key | None:
        return next((key for key in self.keys if key.id == key_id), None)


class Keys:
    """The keys derived from one server key, or from a ring of them (the newest current).

    `reload`, when given, returns the ring's server keys again (oldest first), e.g. by
    reading the key file: used when a value names a key this ring does not hold.
    """

    def __init__(
        self,
        server_key: bytes,
        *,
        older: Sequence[bytes] = (),
        reload: Callable[[], Sequence[bytes]] | None = None,
    ) -> None:
        self._ring = _ring_of([*older, server_key], current=None)
        self._pinned: dict[Use, bytes] = {}
        self._reload = reload
        self._lock = threading.Lock()
        self.checked = False  # whether the database has been seen to use this key

    @property
    def fingerprint(self) -> str:
        """A value that recognizes the (current) server key and reveals nothing of it."""
        return self._ring.current.fingerprint

    @property
    def fingerprints(self) -> list[str]:
        """The fingerprints of every key of the ring, oldest first."""
        return [key.fingerprint for key in self._ring.keys]

    @property
    def key_id(self) -> str:
        """The short id that values sealed now carry (hex)."""
        return self._ring.current.id.hex()

    def derived(self, use: Use) -> bytes:
        """The key derived for `use` (for HMACs: survey links); stable ones as pinned."""
        pinned = self._pinned.get(use)
        return pinned if pinned is not None else self._ring.current.derived[use]

    def derived_each(self, use: Use) -> list[bytes]:
        """The key derived for `use` from every key of the ring, the current one first
        (keyed hashes written before a rotation's step rebuilt them still match one)."""
        ring = self._ring
        return [self.derived(use)] + [
            key.derived[use] for key in ring.keys if key is not ring.current
        ]

    def seal(self, use: Use, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt and authenticate `plaintext` for `use`, bound to `context`."""
        key = self._ring.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key.derived[use]).encrypt(nonce, plaintext, _aad(use, context))
        return VERSION + key.id + nonce + sealed

    def open(self, use: Use, sealed: bytes, *, context: str) -> bytes:
        """The plaintext of a sealed value; WrongKey if it does not open."""
        if sealed[:1] == VERSION_1 and len(sealed) >= 1 + NONCE_BYTES + TAG_BYTES:
            body = sealed[1:]
            candidates: Sequence[_Key] = self._ring.keys
        elif sealed[:1] == VERSION and len(sealed) >= 1 + KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES:
            key_id, body = sealed[1 : 1 + KEY_ID_BYTES], sealed[1 + KEY_ID_BYTES :]
            key = self._ring.by_id(key_id)
            if key is None and self.reload():
                key = self._ring.by_id(key_id)
            if key is None:
                raise WrongKey("sealed with a server key this server does not hold")
            candidates = (key,)
        else:
            raise WrongKey("not a value sealed by Trialdesk")
        nonce, ciphertext = body[:NONCE_BYTES], body[NONCE_BYTES:]
        for key in candidates:
            try:
                return AESGCM(key.derived[use]).decrypt(nonce, ciphertext, _aad(use, context))
            except InvalidTag:
                continue
        raise WrongKey("sealed with another server key, or altered")

    def sealed_with(self, sealed: bytes) -> str | None:
        """The short id (hex) of the key that sealed a value (None: a version 1 value)."""
        if sealed[:1] == VERSION:
            return sealed[1 : 1 + KEY_ID_BYTES].hex()
        return None

    def holds(self, fingerprint: str) -> bool:
        """Whether a key of the ring has this fingerprint."""
        return any(key.fingerprint == fingerprint for key in self._ring.keys)

    def use_current(self, fingerprint: str) -> bool:
        """Seal with the ring's key of this fingerprint from now on (re-reading the ring
        once if it holds no such key); whether it does."""
        if self._ring.current.fingerprint == fingerprint:
            return True
        if not self.holds(fingerprint):
            self.reload()
        with self._lock:
            key = next((k for k in self._ring.keys if k.fingerprint == fingerprint), None)
            if key is None:
                return False
            self._ring = _Ring(self._ring.keys, key)
        return True

    def reload(self) -> bool:
        """Read the ring's keys again from its source; whether anything changed."""
        if self._reload is None:
            return False
        with self._lock:
            before = self._ring
            ring = _ring_of(self._reload(), current=None)
            # Keep the keys already known too: values sealed with them may still be read;
            # which key seals changes only through `use_current` (the database says).
            known = {key.fingerprint for key in ring.keys}
            kept = tuple(key for key in before.keys if key.fingerprint not in known)
            self._ring = _Ring(kept + ring.keys, before.current)
            return self._ring.keys != before.keys

    def pin(self, stable: Mapping[Use, bytes]) -> None:
        """Use these keys for the stable uses (as kept in the database)."""
        with self._lock:
            self._pinned = {use: stable[use] for use in STABLE if use in stable}

    @property
    def pinned(self) -> bool:
        return bool(self._pinned)

    def stable(self) -> dict[Use, bytes]:
        """The keys of the stable uses, as `derived` gives them now."""
        return {use: self.derived(use) for use in STABLE}

    def with_keys(self, *server_keys: bytes) -> Keys:
        """A new ring: this one's keys plus `server_keys`, the last of them current, the
        same pinned keys; it does not re-read anything."""
        added = tuple(_Key.of(k) for k in server_keys)
        keys = Keys.__new__(Keys)
        keys._ring = _Ring(self._ring.keys + added, added[-1] if added else self._ring.current)
        keys._pinned = dict(self._pinned)
        keys._reload = None
        keys._lock = threading.Lock()
        keys.checked = False
        return keys


def fingerprint_of(server_key: bytes) -> str:
    """The fingerprint of one server key."""
    return _Key.of(server_key).fingerprint


def _ring_of(server_keys: Sequence[bytes], *, current: str | None) -> _Ring:
    if not server_keys:
        raise ValueError("a key ring needs at least one key")
    keys: list[_Key] = []
    for server_key in server_keys:
        key = _Key.of(server_key)
        if all(k.fingerprint != key.fingerprint for k in keys):
            keys.append(key)
    chosen = next((k for k in keys if k.fingerprint == current), keys[-1])
    return _Ring(tuple(keys), chosen)


def _derive(server_key: bytes, use: Use) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"trialdesk " + use.encode())
    return hkdf.derive(server_key)


def _aad(use: Use, context: str) -> bytes:
    return use.encode() + b"\x00" + context.encode()
