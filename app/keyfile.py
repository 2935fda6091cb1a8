"""The server key file (a ring of keys, oldest first) and escrow copies of it.

The key file is text, readable by its owner only, in a folder of its own (0700):

    # comment lines
    key 3fa2c1d0 <the key: 64 URL-safe characters>
    key 9b01e77a <a newer key, after `trialdesk keys rotate`>

The word `key` and the short id (the key's fingerprint, abridged; for people) are
optional: the file of earlier versions, one line holding the key, is read as a ring of
one. Which key of the ring seals is recorded in the database (`server_key`), not here.

An escrow file (`trialdesk keys export`) is JSON holding the ring encrypted with
AES-256-GCM under a key derived from a passphrase with scrypt; the scrypt parameters,
the salt and the keys' fingerprints are in the file and authenticated with it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.keys import fingerprint_of

ESCROW_FORMAT = "trialdesk-key-escrow"
ESCROW_VERSION = 1
SCRYPT_N = 2**17  # 128 MiB with r = 8: about a third of a second per guess
SCRYPT_R = 8
SCRYPT_P = 1
MAX_SCRYPT_N = 2**20  # what an escrow file may ask for (a crafted file must not exhaust memory)
MIN_PASSPHRASE_LENGTH = 12
MAX_ESCROW_BYTES = 1 << 20
HEADER = (
    "# Trialdesk server keys, oldest first; the database records which one seals.\n"
    "# Keep this file secret, apart from the database and from its backups (docs/keys.md).\n"
)


class KeyFileError(RuntimeError):
    """A key file or an escrow file cannot be used; the message says why."""


def new_key() -> bytes:
    """A new random server key (384 bits, as URL-safe text)."""
    return secrets.token_urlsafe(48).encode()


def default_path(config_dir: Path, database: Path) -> Path:
    """The default key file of a SQLite database: one per database (named after its
    absolute path) in `config_dir`'s `keys` folder."""
    absolute = database.expanduser().resolve()
    digest = hashlib.sha256(str(absolute).encode()).hexdigest()[:16]
    return config_dir / "keys" / f"{absolute.stem[:40]}-{digest}.key"


def read(path: Path) -> list[bytes] | None:
    """The keys of the file, oldest first (None: no such file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"the key file {path} cannot be read: {exc}") from None
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split(maxsplit=2)
        if not words or words[0].startswith("#"):
            continue
        if len(words) == 1:
            keys.append(words[0].encode())
        elif len(words) == 3 and words[0] == "key":
            keys.append(words[2].strip().encode())
        else:
            raise KeyFileError(f"the key file {path}, line {number}: not `key ID KEY`")
    if not keys:
        raise KeyFileError(f"the key file {path} holds no key")
    return keys


def read_or_create(path: Path, *, note: str = "") -> list[bytes]:
    """The keys of the file, or of a new file holding one new key (never overwritten:
    of two processes creating it at once, both read the one that was written first)."""
    keys = read(path)
    if keys is not None:
        return keys
    with contextlib.suppress(FileExistsError):
        write(path, [new_key()], note=note, replace=False)
    keys = read(path)
    if keys is None:
        raise KeyFileError(f"the key file {path} vanished while it was created")
    return keys


def write(path: Path, keys: Sequence[bytes], *, note: str = "", replace: bool = True) -> None:
    """Write the ring to `path` at once (0600, its folder 0700 if made here): readers see
    the old file or the new one, never half of one. FileExistsError if not `replace`."""
    if not keys:
        raise KeyFileError("a key file needs at least one key")
    make_private_folder(path.parent)
    lines = [HEADER, *(f"# {line}\n" for line in note.splitlines() if line)]
    lines += [f"key {fingerprint_of(key)[:8]} {key.decode()}\n" for key in keys]
    descriptor, temporary = tempfile.mkstemp(prefix=".trialdesk-key-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:  # mkstemp: 0600
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if the file exists
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _sync_folder(path.parent)


def make_private_folder(folder: Path) -> None:
    """Create `folder` (and its parents) readable by its owner only."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):
            parent.mkdir(mode=0o700)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def export_escrow(keys: Sequence[bytes], passphrase: str, *, n: int = SCRYPT_N) -> bytes:
    """The escrow file's content: the keys, encrypted under the passphrase."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise KeyFileError(f"the passphrase must have {MIN_PASSPHRASE_LENGTH} characters or more")
    salt = os.urandom(16)
    header: dict[str, Any] = {
        "format": ESCROW_FORMAT,
        "version": ESCROW_VERSION,
        "fingerprint": fingerprint_of(keys[-1]),
        "fingerprints": [fingerprint_of(key) for key in keys],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "kdf": {"name": "scrypt", "salt": _b64(salt), "n": n, "r": SCRYPT_R, "p": SCRYPT_P},
        "cipher": "AES-256-GCM",
    }
    nonce = os.urandom(12)
    plaintext = json.dumps({"keys": [key.decode() for key in keys]}).encode()
    sealed = AESGCM(_kdf(header["kdf"], passphrase)).encrypt(nonce, plaintext, _aad(header))
    document = {**header, "nonce": _b64(nonce), "ciphertext": _b64(sealed)}
    return (json.dumps(document, indent=2) + "\n").encode()


def import_escrow(content: bytes, passphrase: str) -> list[bytes]:
    """The keys of an escrow file; KeyFileError if it is not one, or the passphrase is
    wrong (or the file was altered)."""
    if len(content) > MAX_ESCROW_BYTES:
        raise KeyFileError("not a Trialdesk key escrow file (too large)")
    try:
        document = json.loads(content)
        if not isinstance(document, dict) or document.get("format") != ESCROW_FORMAT:
            raise KeyFileError("not a Trialdesk key escrow file")
        if document.get("version") != ESCROW_VERSION:
            raise KeyFileError(f"an escrow file of version {document.get('version')!r}")
        header = {k: v for k, v in document.items() if k not in ("nonce", "ciphertext")}
        nonce, sealed = _unb64(document["nonce"]), _unb64(document["ciphertext"])
        key = _kdf(header["kdf"], passphrase)
    except KeyFileError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise KeyFileError(f"not a readable Trialdesk key escrow file ({exc})") from None
    try:
        plaintext = AESGCM(key).decrypt(nonce, sealed, _aad(header))
    except (InvalidTag, ValueError):
        raise KeyFileError("wrong passphrase (or the escrow file was altered)") from None
    keys = [text.encode() for text in json.loads(plaintext)["keys"]]
    if [fingerprint_of(k) for k in keys] != header.get("fingerprints"):
        raise KeyFileError("the escrow file's keys do not match its fingerprints")
    return keys


def _kdf(parameters: Any, passphrase: str) -> bytes:
    if not isinstance(parameters, dict) or parameters.get("name") != "scrypt":
        raise KeyFileError("the escrow file names a key derivation this version lacks")
    n, r, p = (parameters.get(name) for name in ("n", "r", "p"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise KeyFileError("the escrow file's scrypt parameters are not numbers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise KeyFileError("the escrow file's scrypt parameters are out of range")
    salt = _unb64(parameters["salt"])
    # The same passphrase typed on another system may arrive composed differently (é as
    # one code point or two): NFC makes them one.
    typed = unicodedata.normalize("NFC", passphrase).encode()
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(typed)


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError("the escrow file is damaged (a field is not text)")
    return base64.b64decode(text, validate=True)
