"""Exports streamed from the database in constant memory (Stata and SPSS files through a
private temporary file), each one audited when it starts and when it ends."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.db.engine import Database
from app.errors import Busy
from app.exports import formats, rscript, statfiles
from app.exports.reading import (
    PARTICIPANTS,
    Export,
    Format,
    Kind,
    TextFormat,
    count_participants,
    dataset_rows,
    dated_name,
    prepare,
    records,
    safety_export,
)
from app.exports.safety_tables import PRIMARY_KEYS, SAFETY_DESCRIPTION, SafetyTable

__all__ = [
    "PARTICIPANTS",
    "Export",
    "Format",
    "Kind",
    "TextFormat",
    "count_participants",
    "dataset_rows",
    "dated_name",
    "prepare",
    "records",
]
MAX_STREAMS = 4  # export downloads at once, per process
FILE_CHUNK = 64 * 1024
STAT_FORMATS = (Format.dta, Format.sav)
log = logging.getLogger("trialdesk.exports")


def started(
    session: Session,
    export: Export,
    *,
    parameters: Mapping[str, str],
    actor: Principal | None,
    reason: str | None = None,
) -> None:
    """Write `export.started` (caller, parameters, reason) in the request's transaction:
    it is committed before the first byte is sent."""
    audit.record(
        session,
        AuditAction.export_started,
        actor=actor,
        entity_id=f"{export.slug}:{export.kind}",
        study_id=export.study_id,
        reason=reason,
        changes={"export": (None, export.id), "parameters": (None, parameters)},
    )


def finished(
    db: Database,
    export: Export,
    *,
    actor: Principal | None,
    counter: Counter,
    complete: bool,
) -> None:
    """`export.completed` with the rows and the SHA-256 of the bytes sent; or
    `export.aborted` with what was sent before the client went away or a fault."""
    action = AuditAction.export_completed if complete else AuditAction.export_aborted
    try:
        with db.begin() as session:
            audit.record(
                session,
                action,
                actor=actor,
                entity_id=f"{export.slug}:{export.kind}",
                study_id=export.study_id,
                changes={
                    "export": (None, export.id),
                    "rows": (None, counter.rows),
                    "bytes": (None, counter.size),
                    "sha256": (None, counter.digest.hexdigest()),
                },
            )
    except Exception:  # the bytes are out: say so loudly, never hide the first fault
        log.exception("the end of export %s could not be audited", export.id)


class StreamSlot:
    """One of the process's `MAX_STREAMS` export streams. A stream holds a pooled
    connection and a read transaction until its client has read the last byte, outside
    the request slots: without a bound, slow downloads could take every connection."""

    _free = threading.BoundedSemaphore(MAX_STREAMS)

    def __init__(self) -> None:
        self._held = False
        if not self._free.acquire(blocking=False):
            raise Busy(f"{MAX_STREAMS} exports are being downloaded; try again shortly")
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._free.release()

    def __del__(self) -> None:  # a response never sent: its stream never started
        self.release()


class Counter:
    """Counts rows and hashes what is sent, as it streams through."""

    def __init__(self) -> None:
        self.rows = 0
        self.size = 0
        self.digest = hashlib.sha256()

    def count(self, source: Iterable[list[Any]]) -> Iterator[list[Any]]:
        for row in source:
            self.rows += 1
            yield row

    def sent(self, chunk: bytes) -> bytes:
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def stream(
    db: Database,
    export: Export,
    *,
    fmt: Format,
    actor: Principal | None,
    slot: StreamSlot | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export's bytes, read in one read-only transaction; audited at the end."""

    def body(counter: Counter) -> Generator[bytes]:
        with db.session(write=False) as session:
            source = counter.count(dataset_rows(session, export, progress))
            if fmt in STAT_FORMATS:
                yield from stat_chunks(export, source, fmt=fmt)
                return
            write = formats.csv_chunks if fmt is Format.csv else formats.json_chunks
            for chunk in write(export.columns, source):
                yield chunk.encode()

    return _audited(db, export, body, actor=actor, slot=slot)


def stat_chunks(export: Export, rows: Iterable[list[Any]], *, fmt: Format) -> Iterator[bytes]:
    """The rows as a Stata or SPSS file, in chunks: written in a private temporary folder
    (readable by this user only), read back, and deleted when the stream ends or stops."""
    with tempfile.TemporaryDirectory(prefix="trialdesk-export-") as folder:
        path = Path(folder) / f"export.{fmt}"
        statfiles.write(path, export.columns, rows, fmt=fmt, label=export.title)
        with path.open("rb") as written:
            while chunk := written.read(FILE_CHUNK):
                yield chunk


def _audited(
    db: Database,
    export: Export,
    body: Callable[[Counter], Generator[bytes]],
    *,
    actor: Principal | None,
    slot: StreamSlot | None,
) -> Iterator[bytes]:
    """The bytes of `body`, counted and hashed as they go; cut short after the time
    limit; `export.completed` after the last, `export.aborted` if the client went away,
    a fault or the limit stopped it. The stream's slot is given back either way."""
    counter = Counter()
    complete = False
    deadline = time.monotonic() + db.settings.export_time_limit_s
    chunks = body(counter)
    try:
        for chunk in chunks:
            if time.monotonic() > deadline:
                log.warning("export %s cut short after its time limit", export.id)
                return
            yield counter.sent(chunk)
        complete = True
    finally:
        chunks.close()  # its read transaction ends now, not when it is collected
        if slot is not None:
            slot.release()
        finished(db, export, actor=actor, counter=counter, complete=complete)


def package_files(
    session: Session,
    wide: Export,
    long: Export,
    people: Export,
    counter: Counter,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, Iterator[bytes]]]:
    """The files of the blinded data package, each as (name, its bytes in chunks):
    `datapackage.json`, the codebooks, the long, wide and participant files and the
    safety tables (adverse events, deviations) as CSV, Stata and SPSS, and an R script
    that reads the CSV with factors and labels (all read in `session`)."""
    files = (
        (f"blinded_{long.shape}", long),
        (f"blinded_{wide.shape}", wide),
        (PARTICIPANTS, people),
        *((str(table), safety_export(long, table)) for table in SafetyTable),
    )
    descriptor = formats.data_package(
        name=long.slug,
        title=long.title,
        resources=[_resource(n, e) for n, e in files],
    )
    yield "datapackage.json", iter([(json.dumps(descriptor, indent=2) + "\n").encode()])
    for name, export in files:
        book = formats.codebook_csv(export.columns)
        yield f"codebook_{name.removeprefix('blinded_')}.csv", iter([book.encode()])
    script = rscript.script(long.slug, long.title, [(n, e.columns) for n, e in files])
    yield f"{long.slug}.R", iter([script.encode()])
    for name, export in files:
        by_participant = export.table is None and not export.participants
        rows = counter.count(dataset_rows(session, export, progress if by_participant else None))
        chunks = formats.csv_chunks(export.columns, rows)
        yield f"{name}.csv", (chunk.encode() for chunk in chunks)
    for fmt in STAT_FORMATS:
        for name, export in files:
            yield f"{name}.{fmt}", stat_chunks(export, dataset_rows(session, export), fmt=fmt)


def _resource(name: str, export: Export) -> formats.Resource:
    """The data package's description of one of its files."""
    if export.table is not None:  # one row per event or deviation, of a participant
        return formats.Resource(
            name,
            f"{name}.csv",
            export.columns,
            key=PRIMARY_KEYS[export.table],
            parent=PARTICIPANTS,
            description=SAFETY_DESCRIPTION,
        )
    key = ["pseudonym"] if export.participants else formats.dataset_key(export.shape)
    return formats.Resource(name, f"{name}.csv", export.columns, key=key)


def snapshot(session: Session) -> Session:
    """The session, reading one snapshot for all its statements (PostgreSQL reads each
    statement's own by default; a SQLite transaction is one snapshot already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return session


class _Pipe(io.RawIOBase):
    """A write-only, unseekable file whose bytes are taken out as they come."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def package(
    db: Database,
    wide: Export,
    long: Export,
    people: Export,
    *,
    actor: Principal,
    slot: StreamSlot | None = None,
) -> Iterator[bytes]:
    """The data package as a zip, streamed: each entry is written as it is read, both
    datasets from one snapshot."""

    def body(counter: Counter) -> Generator[bytes]:
        pipe = _Pipe()
        with (
            db.session(write=False) as session,
            zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            for name, chunks in package_files(snapshot(session), wide, long, people, counter):
                with archive.open(name, "w", force_zip64=True) as entry:
                    for chunk in chunks:
                        entry.write(chunk)
                        yield pipe.take()
        yield pipe.take()

    return _audited(db, long, body, actor=actor, slot=slot)


def write_package(
    db: Database,
    wide: Export,
    long: Export,
    people: Export,
    directory: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> Counter:
    """Write the data package's files into `directory` (which must not exist, or be
    empty); each file readable by its owner only. Audited as an export; `progress(1)`
    after each participant of each dataset."""
    counter = Counter()
    complete = False
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty")
    try:
        with db.session(write=False) as session:
            files = package_files(snapshot(session), wide, long, people, counter, progress)
            for name, chunks in files:
                descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as out:
                    for chunk in chunks:
                        out.write(counter.sent(chunk))
        complete = True
    finally:
        finished(db, long, actor=None, counter=counter, complete=complete)
    return counter
