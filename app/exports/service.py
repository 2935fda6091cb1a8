"""Exports read from the database as a stream: one query, grouped by participant, in
constant memory; each one audited when it starts and when it ends."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from itertools import groupby
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.db.engine import Database
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
from app.exports.pseudonyms import group_codes, pseudonym
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.randomization.models import Allocation, Stratum
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.studies.models import Site, Study
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import Window, local_date, status

YIELD_PER = 500


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
    pseudonym_key: bytes
    groups: dict[str, str]  # arm → group code
    now: datetime


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
        pseudonym_key=key,
        groups=group_codes(key, [a.code for a in definition.arms]),
        now=audit.lock_chain_head(session).at,
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
        changes={"parameters": (None, parameters)},
    )


def finished(
    db: Database, export: Export, *, actor: Principal | None, rows: int, sha256: str
) -> None:
    with db.begin() as session:
        audit.record(
            session,
            AuditAction.export_completed,
            actor=actor,
            entity_id=f"{export.slug}:{export.kind}",
            study_id=export.study_id,
            changes={"rows": (None, rows), "sha256": (None, sha256)},
        )


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
        .order_by(Participant.id, SurveyInstance.id)
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
            pseudonym=pseudonym(export.pseudonym_key, first.code),
            group=export.groups.get(first.arm) if first.arm is not None else None,
            site=first.site,
            strata=first.strata or {},
            randomized_on=randomized_on,
            surveys=surveys,
            allocation=allocation,
        )
    result.close()


def _survey(line: Row[Any], now: datetime, zone: Any) -> SurveyRecord:
    state = status(
        Window(line.opens_on, line.closes_on),
        now=now,
        zone=zone,
        completed_at=line.completed_at,
        cancelled_at=line.cancelled_at,
    )
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
        self.digest = hashlib.sha256()

    def count(self, source: Iterable[list[Any]]) -> Iterator[list[Any]]:
        for row in source:
            self.rows += 1
            yield row

    def sent(self, chunk: bytes) -> bytes:
        self.digest.update(chunk)
        return chunk


def stream(
    db: Database,
    export: Export,
    *,
    fmt: Format,
    actor: Principal | None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export's bytes, read in one read-only transaction; `export.completed` once
    the last byte is out."""
    counter = Counter()
    with db.session(write=False) as session:
        source = counter.count(dataset_rows(session, export, progress))
        chunks = (
            formats.csv_chunks(export.columns, source)
            if fmt is Format.csv
            else formats.json_chunks(export.columns, source)
        )
        for chunk in chunks:
            yield counter.sent(chunk.encode())
    finished(db, export, actor=actor, rows=counter.rows, sha256=counter.digest.hexdigest())


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


def package(db: Database, wide: Export, long: Export, *, actor: Principal) -> Iterator[bytes]:
    """A zip of `datapackage.json`, the long and the wide CSV, and the codebooks;
    streamed (the zip's entries are written as they are read)."""
    counter = Counter()
    pipe = _Pipe()
    descriptor = formats.data_package(
        name=long.slug,
        title=long.title,
        resources=[
            ("blinded_long", "blinded_long.csv", Shape.long, long.columns),
            ("blinded_wide", "blinded_wide.csv", Shape.wide, wide.columns),
        ],
    )
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("datapackage.json", json.dumps(descriptor, indent=2) + "\n")
        for name, export in (("codebook_long.csv", long), ("codebook_wide.csv", wide)):
            archive.writestr(name, formats.codebook_csv(export.columns))
        yield counter.sent(pipe.take())
        for export in (long, wide):
            with (
                db.session(write=False) as session,
                archive.open(f"blinded_{export.shape}.csv", "w", force_zip64=True) as entry,
            ):
                source = counter.count(dataset_rows(session, export))
                for chunk in formats.csv_chunks(export.columns, source):
                    entry.write(chunk.encode())
                    yield counter.sent(pipe.take())
    yield counter.sent(pipe.take())
    finished(db, long, actor=actor, rows=counter.rows, sha256=counter.digest.hexdigest())
