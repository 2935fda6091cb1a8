"""Exports read from the database as a stream: one query, grouped by participant, in
constant memory; each one audited when it starts and when it ends."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from itertools import groupby
from pathlib import Path
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.db.engine import Database
from app.errors import Busy
from app.exports import formats
from app.exports.dataset import (
    Allocated,
    Column,
    ParticipantRecord,
    RowMaker,
    Shape,
    SurveyRecord,
    columns,
)
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.randomization.models import Allocation, Stratum
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.studies.models import Site, Study
from app.studies.pseudonyms import group_codes, pseudonym
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date, status_of

YIELD_PER = 500
MAX_STREAMS = 4  # export downloads at once, per process
log = logging.getLogger("trialdesk.exports")


class Format(StrEnum):
    csv = "csv"
    json = "json"


class Kind(StrEnum):
    blinded = "blinded"
    unblinded = "unblinded"


@dataclass(frozen=True)
class Export:
    """What an export is of, decided (and audited) before its first byte is sent."""

    study_id: int
    slug: str
    title: str
    definition: StudyDefinition
    kind: Kind
    shape: Shape
    columns: list[Column]
    groups: dict[str, str]  # arm → group code
    now: datetime
    # The study's blinding key: pseudonyms are computed, never stored beside codes.
    blinding_key: bytes = field(repr=False, default=b"")
    id: str = field(default_factory=lambda: secrets.token_hex(8))  # pairs its audit records


def prepare(session: Session, *, study: Study, kind: Kind, shape: Shape) -> Export:
    """Decide the export's columns, pseudonym key and group codes."""
    definition = studies.definition_of(study)
    key = studies.blinding_key_of(session, study)
    return Export(
        study_id=study.id,
        slug=study.slug,
        title=study.title,
        definition=definition,
        kind=kind,
        shape=shape,
        columns=columns(definition, shape=shape, unblinded=kind is Kind.unblinded),
        groups=group_codes(key, [a.code for a in definition.arms]),
        now=audit.lock_chain_head(session).at,
        blinding_key=key,
    )


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


def records(session: Session, export: Export) -> Iterator[ParticipantRecord]:
    """Every enrolled participant of the study (withdrawn ones too), in order, with their
    surveys; read by one streaming query."""
    unblinded = export.kind is Kind.unblinded
    arm_labels = {a.code: a.label for a in export.definition.arms}
    zone = export.definition.zone()
    query = (
        select(
            Participant.id,
            Participant.code,
            Participant.strata,
            Participant.randomized_at,
            Site.code.label("site"),
            Allocation.arm,
            Stratum.key.label("stratum"),
            Allocation.block,
            Allocation.block_size,
            Allocation.position,
            SurveyInstance.timepoint,
            SurveyInstance.opens_on,
            SurveyInstance.closes_on,
            SurveyInstance.completed_at,
            SurveyInstance.cancelled_at,
            SurveyInstance.answers,
            SurveyInstance.scores,
        )
        .join(Site, Site.id == Participant.site_id)
        .outerjoin(Allocation, Allocation.participant_id == Participant.id)
        .outerjoin(Stratum, Stratum.id == Allocation.stratum_id)
        .outerjoin(SurveyInstance, SurveyInstance.participant_id == Participant.id)
        .where(
            Participant.study_id == export.study_id,
            Participant.status != ParticipantStatus.ineligible,
        )
        # By a keyed hash of the code: the order of enrollment would give codes and
        # allocations away (studies.pseudonyms.export_order).
        .order_by(Participant.export_order, Participant.id, SurveyInstance.id)
        .execution_options(yield_per=YIELD_PER)
    )
    result = session.connection().execute(query)  # rows, not entities: no ORM work
    for _, group in groupby(result, key=lambda r: r.id):
        lines = list(group)
        first = lines[0]
        randomized_on = local_date(first.randomized_at, zone) if first.randomized_at else None
        surveys = {
            line.timepoint: _survey(line, export.now, zone)
            for line in lines
            if line.timepoint is not None
        }
        allocation = None
        if unblinded and first.arm is not None:
            allocation = Allocated(
                arm=first.arm,
                arm_label=arm_labels.get(first.arm, first.arm),
                stratum=first.stratum,
                block=first.block,
                block_size=first.block_size,
                position=first.position,
            )
        yield ParticipantRecord(
            pseudonym=pseudonym(export.blinding_key, first.code),
            group=export.groups.get(first.arm) if first.arm is not None else None,
            site=first.site,
            strata=first.strata or {},
            randomized_on=randomized_on,
            surveys=surveys,
            allocation=allocation,
        )
    result.close()


def _survey(line: Row[Any], now: datetime, zone: Any) -> SurveyRecord:
    state = status_of(line, now=now, zone=zone)
    completed_on: date | None = local_date(line.completed_at, zone) if line.completed_at else None
    return SurveyRecord(
        status=state.value,
        completed_on=completed_on,
        answers=line.answers or {},
        scores=line.scores or {},
    )


def dataset_rows(
    session: Session, export: Export, progress: Callable[[int], None] | None = None
) -> Iterator[list[Any]]:
    """Every row of the export, in order; `progress(1)` after each participant."""
    make = RowMaker(export.columns, export.definition, export.shape)
    for record in records(session, export):
        yield from make(record)
        if progress is not None:
            progress(1)


def count_participants(session: Session, export: Export) -> int:
    """How many participants the export will hold (for a progress bar)."""
    return (
        session.scalar(
            select(func.count()).where(
                Participant.study_id == export.study_id,
                Participant.status != ParticipantStatus.ineligible,
            )
        )
        or 0
    )


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
            write = formats.csv_chunks if fmt is Format.csv else formats.json_chunks
            for chunk in write(export.columns, source):
                yield chunk.encode()

    return _audited(db, export, body, actor=actor, slot=slot)


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
    counter: Counter,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, Iterator[bytes]]]:
    """The files of the blinded data package, each as (name, its bytes in chunks):
    `datapackage.json`, the codebooks, the long and the wide CSV (read in `session`)."""
    descriptor = formats.data_package(
        name=long.slug,
        title=long.title,
        resources=[
            ("blinded_long", "blinded_long.csv", Shape.long, long.columns),
            ("blinded_wide", "blinded_wide.csv", Shape.wide, wide.columns),
        ],
    )
    yield "datapackage.json", iter([(json.dumps(descriptor, indent=2) + "\n").encode()])
    for export in (long, wide):
        yield f"codebook_{export.shape}.csv", iter([formats.codebook_csv(export.columns).encode()])
    for export in (long, wide):
        rows = counter.count(dataset_rows(session, export, progress))
        chunks = formats.csv_chunks(export.columns, rows)
        yield f"blinded_{export.shape}.csv", (chunk.encode() for chunk in chunks)


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
    db: Database, wide: Export, long: Export, *, actor: Principal, slot: StreamSlot | None = None
) -> Iterator[bytes]:
    """The data package as a zip, streamed: each entry is written as it is read, both
    datasets from one snapshot."""

    def body(counter: Counter) -> Generator[bytes]:
        pipe = _Pipe()
        with (
            db.session(write=False) as session,
            zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            for name, chunks in package_files(snapshot(session), wide, long, counter):
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
            files = package_files(snapshot(session), wide, long, counter, progress)
            for name, chunks in files:
                descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as out:
                    for chunk in chunks:
                        out.write(counter.sent(chunk))
        complete = True
    finally:
        finished(db, long, actor=None, counter=counter, complete=complete)
    return counter
