"""Anchors of the audit chain outside the database: signed checkpoints of its head.

After each committed transaction that appended records, one line is appended to
`<state dir>/audit/<chain id>/anchors.jsonl` (folder 0700, file 0600): the head's
`{seq, hash, at}`, signed with an HMAC under a key derived from the server key. It is
one small `write` to a file opened with O_APPEND, flushed to the operating system but
not fsynced: a crash of the machine may lose the newest anchors, never reorder them,
and `verify` tolerates an anchor that is missing (it only needs every anchor it finds to
be a record of the chain). A cut-off trail or an older copy of the database put back
leaves anchors beyond the database's head, which `verify` reports.

Two kinds of line mark a legitimate break: `restore` (a backup was restored: anchors
written before it beyond the backup's head belong to a history that was given up) and
`rekey` (the chain was re-MACed under a new server key: every line before it was
checked then, under the old key, and is no longer read).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.audit.chain import dumps
from app.keys import Keys, Use

FILE_NAME = "anchors.jsonl"
VERSION = 1
MAX_LINE = 4096

log = logging.getLogger("trialdesk.audit")


@dataclass(frozen=True)
class Anchor:
    """One signed line of the anchors file."""

    kind: str  # "head", "restore" or "rekey"
    chain: str
    seq: int
    hash: str
    at: str
    base_seq: int | None  # restore: the restored backup's head
    line: dict[str, Any]  # as written, signature included (what an auditor keeps)


def folder(state_dir: Path, chain_id: str) -> Path:
    return state_dir / "audit" / chain_id


def path_of(state_dir: Path, chain_id: str) -> Path:
    return folder(state_dir, chain_id) / FILE_NAME


def sign(keys: Keys, fields: dict[str, Any]) -> dict[str, Any]:
    """The line with its signature (HMAC-SHA256 of its canonical JSON; a field that is
    null is not signed, so a line read back through the API still verifies)."""
    body = {k: v for k, v in fields.items() if k != "sig" and v is not None}
    mac = hmac.new(keys.derived(Use.audit_anchor), dumps(body).encode(), hashlib.sha256)
    return {**body, "sig": mac.hexdigest()}


def make_line(
    keys: Keys, *, kind: str, chain: str, seq: int, hash: str, at: str, base_seq: int | None = None
) -> dict[str, Any]:
    fields: dict[str, Any] = {"v": VERSION, "kind": kind, "chain": chain, "seq": seq}
    fields |= {"hash": hash, "at": at}
    if base_seq is not None:
        fields["base_seq"] = base_seq
    return sign(keys, fields)


def append(state_dir: Path, line: dict[str, Any]) -> None:
    """Append one line (one `write` with O_APPEND); the folders are made 0700, the file
    0600. Not fsynced: see the module's docstring."""
    place = folder(state_dir, line["chain"])
    _private_folder(place)
    data = (dumps(line) + "\n").encode()
    descriptor = os.open(place / FILE_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def replace(state_dir: Path, chain_id: str, line: dict[str, Any]) -> None:
    """Start the file anew with this one line (after a rekey); the old file is kept
    beside it, renamed."""
    place = folder(state_dir, chain_id)
    _private_folder(place)
    current = place / FILE_NAME
    if current.exists():
        current.rename(place / f"anchors-before-rekey-{line['seq']}-{line['at'][:19]}.jsonl")
    temporary = place / (FILE_NAME + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write((dumps(line) + "\n").encode())
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(current)


def _private_folder(place: Path) -> None:
    """The state dir, its `audit/` and the chain's folder, each made 0700 if missing
    (mkdir's mode is masked by the umask, so it is set again)."""
    if place.is_dir():
        return
    for part in (place.parent.parent, place.parent, place):
        if not part.is_dir():
            part.mkdir(mode=0o700, parents=True, exist_ok=True)
            part.chmod(0o700)


@dataclass(frozen=True)
class BadLine:
    number: int
    problem: str


def read(state_dir: Path, keys: Keys, chain_id: str) -> Iterator[tuple[int, Anchor | BadLine]]:
    """Every line of the chain's anchors file, in file order, checked (streamed). Lines
    before the last `rekey` line are skipped (signed under an older key)."""
    path = path_of(state_dir, chain_id)
    start = _last_rekey_line(path, keys, chain_id)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number < start:
                continue
            yield number, parse(raw, keys, chain_id, number)


def parse(raw: bytes, keys: Keys, chain_id: str, number: int = 0) -> Anchor | BadLine:
    """One line, its signature checked."""
    try:
        line = json.loads(raw[:MAX_LINE])
        if not isinstance(line, dict):
            raise ValueError("not an object")
        body = {k: v for k, v in line.items() if k != "sig" and v is not None}
        given = str(line.get("sig", ""))
        # Any key of the ring: during a key rotation, servers sign under the new key
        # before the trail's step re-signs the rest.
        if not any(
            hmac.compare_digest(
                given, hmac.new(key, dumps(body).encode(), hashlib.sha256).hexdigest()
            )
            for key in keys.derived_each(Use.audit_anchor)
        ):
            return BadLine(number, "its signature does not match (altered, or another key)")
        if line.get("chain") != chain_id:
            return BadLine(number, "it belongs to another chain")
        base = line.get("base_seq")
        return Anchor(
            kind=str(line["kind"]),
            chain=str(line["chain"]),
            seq=int(line["seq"]),
            hash=str(line["hash"]),
            at=str(line["at"]),
            base_seq=int(base) if base is not None else None,
            line=line,
        )
    except (ValueError, KeyError, TypeError):
        return BadLine(number, "not an anchor")


def _last_rekey_line(path: Path, keys: Keys, chain_id: str) -> int:
    last = 1
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if b'"rekey"' in raw:
                parsed = parse(raw, keys, chain_id, number)
                if isinstance(parsed, Anchor) and parsed.kind == "rekey":
                    last = number
    return last


def newest(state_dir: Path, keys: Keys, chain_id: str) -> Anchor | None:
    """The last valid line of the file (read from its end), if any."""
    path = path_of(state_dir, chain_id)
    if not path.exists():
        return None
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 8 * MAX_LINE))
        tail = handle.read().splitlines()
    for raw in reversed(tail):
        parsed = parse(raw, keys, chain_id)
        if isinstance(parsed, Anchor):
            return parsed
    return None
