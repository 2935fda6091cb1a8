"""Loading engagement events, and each participant's use of the intervention.

An import reads its file line by line and inserts in batches (`BATCH` rows per
statement run), so memory stays flat whatever the file's size; each batch is
`INSERT ... ON CONFLICT (study_id, event_id) DO NOTHING RETURNING id`, which counts
the rows taken exactly: the rest are duplicates (of an earlier load, or of an earlier
line of the same file). Engagement reveals the arm: only roles the study shows arms
to load or read it (`ensure_arms_visible`), and nothing here is written to a log.
Events name their participant by a keyed hash (`keyed`), never by id.

Each batch is a transaction of its own, committed (the one place a service commits):
with SQLite a load of a million rows in one transaction would hold the database's
write lock for minutes, and every other writer (an enrollment, a participant's text)
would time out. The file is read between batches, with no transaction open. A load
that stops half-way (a crash, a lost connection) leaves the batches it committed; its
event ids make a re-run of the same file take the rest (counting the others as
duplicates). The study's lock is checked in each batch's transaction, and the audit
record is written at the end, in the caller's transaction, with the idempotency
record of its answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import ColumnElement, Integer, Table, bindparam, cast, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.db.server_key import current_keys_of, sealing_keys_of
from app.engagement import keyed
from app.engagement import rows as parse
from app.engagement.models import EngagementEvent
from app.engagement.rows import Event, FileFormat, RowProblem
from app.engagement.usage import Summary
from app.errors import Conflict, FieldProblem, InvalidInput
from app.participants.leaving import LeavingKind
from app.participants.models import Participant
from app.randomization.models import Allocation
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import pseudonym

BATCH = 5000
MAX_LISTED = 1000  # rejected rows listed in an answer; `rejected_count` counts them all
EVENTS: Table = EngagementEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Rejection:
    line: int
    problem: str


@dataclass
class ImportResult:
    """What one load did: rows stored, rows already there, rows refused (the first
    MAX_LISTED of them listed, by line)."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejected_count: int = 0
    lines: int = 0
    size: int = 0
    sha256: str = ""

    def reject(self, line: int, problem: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_LISTED:
            self.rejected.append(Rejection(line, problem))


@dataclass(frozen=True)
class Target:
    """A participant events may be loaded for: id, and the time from which nothing may
    be kept (a withdrawal of consent to the use of their data), if any."""

    id: int
    cut_off: datetime | None


class _Hashing:
    """A binary file read line by line, hashed and counted as it is read."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def readline(self, limit: int = -1, /) -> bytes:
        line = self.source.readline(limit)
        self.digest.update(line)
        self.size += len(line)
        return line


def targets(session: Session, *, study: Study) -> dict[str, Target]:
    """Participant code and export pseudonym → the participant, for every participant
    of the study: built once per load (a keyed hash per participant)."""
    key = studies.blinding_key_of(session, study)
    found: dict[str, Target] = {}
    query = select(
        Participant.id, Participant.code, Participant.withdrawal_kind, Participant.withdrawn_at
    ).where(Participant.study_id == study.id)
    for pid, code, kind, withdrawn_at in session.execute(query):
        target = Target(pid, withdrawn_at if kind == LeavingKind.data else None)
        found[code] = target
        found[pseudonym(key, code)] = target
    return found


def import_events(
    session: Session,
    *,
    study: Study,
    source: IO[bytes],
    fmt: FileFormat,
    actor: Principal | None,
    now: datetime,
) -> ImportResult:
    """Load a file of events into the study (callers check the role may see arms);
    audited `engagement.imported` with the counts and the file's SHA-256."""
    result = ImportResult()
    hashing = _Hashing(source)
    known = targets(session, study=study)
    session.commit()  # no transaction (no write lock) while the file is read
    batch: list[tuple[Event, Target]] = []
    for found in _events(hashing, fmt=fmt, known=known, result=result, now=now):
        batch.append(found)
        if len(batch) >= BATCH:
            _store(session, study=study, batch=batch, result=result, now=now)
            batch = []
    if batch:
        _store(session, study=study, batch=batch, result=result, now=now)
    result.size, result.sha256 = hashing.size, hashing.digest.hexdigest()
    _ensure_not_locked(session, study=study)
    audit.record(
        session,
        AuditAction.engagement_imported,
        actor=actor,
        entity_id=f"{study.slug}:engagement",
        study_id=study.id,
        changes={
            "format": (None, str(fmt)),
            "lines": (None, result.lines),
            "bytes": (None, result.size),
            "sha256": (None, result.sha256),
            "accepted": (None, result.accepted),
            "duplicates": (None, result.duplicates),
            "rejected": (None, result.rejected_count),
        },
    )
    return result


def _store(
    session: Session,
    *,
    study: Study,
    batch: Sequence[tuple[Event, Target]],
    result: ImportResult,
    now: datetime,
) -> None:
    """Insert one batch in a transaction of its own, committed: the events' keys are
    made with the keys that seal in that transaction (a rotation may have switched
    them since the last batch)."""
    _ensure_not_locked(session, study=study)
    keys = sealing_keys_of(session)
    owners: dict[int, str] = {}
    values = []
    for event, target in batch:
        owner = owners.get(target.id)
        if owner is None:
            owner = owners[target.id] = keyed.current_key(keys, study.id, target.id)
        values.append(_values(study.id, event, owner, now))
    _insert(session, values, result)
    session.commit()


class StudyLocked(Conflict):
    code, title = "study-locked", "The study's database is locked"


def _ensure_not_locked(session: Session, *, study: Study) -> None:
    """Refuse a load into a study whose database is locked (its data are final). Checked
    in each batch's transaction and at the end, under the study's row lock (FOR NO KEY
    UPDATE, as other writes of the study take it): a lock that comes during the load
    stops it at the next batch (those committed before the lock stay, as they were
    stored before it), and enrollments of the study wait for one batch at most."""
    query = select(Study.locked_at).where(Study.id == study.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    if session.scalar(query) is not None:
        raise StudyLocked("the study's database is locked: its data are final")


def _events(
    source: _Hashing,
    *,
    fmt: FileFormat,
    known: dict[str, Target],
    result: ImportResult,
    now: datetime,
) -> Iterator[tuple[Event, Target]]:
    """Each event of the file that may be stored, with its participant; the others
    rejected into `result` by line. A CSV file without a header is refused whole."""
    header: list[str] | None = None
    for number, raw in parse.lines(source):
        result.lines = number
        try:
            if raw is None:
                raise RowProblem(f"the line is longer than {parse.MAX_LINE_BYTES:,} bytes")
            text = parse.decode(raw)
            if fmt is FileFormat.csv and header is None:
                header = _header(text, number)
                continue
            if not text.strip():
                continue  # a blank line (the end of a file, often) is no row
            if fmt is FileFormat.csv:
                assert header is not None
                row = parse.csv_row(number, text, header)
            else:
                row = parse.json_row(number, text)
            event = parse.event_of(row, now=now)
            target = known.get(event.participant)
            if target is None:
                raise RowProblem("no participant of this study has this code or pseudonym")
            if target.cut_off is not None and event.at >= target.cut_off:
                raise RowProblem("the participant withdrew consent to the use of their data")
        except RowProblem as problem:
            if fmt is FileFormat.csv and header is None:  # no header: no row can be read
                raise InvalidInput([FieldProblem(("line", number), str(problem))]) from None
            result.reject(number, str(problem))
            continue
        yield event, target
    if fmt is FileFormat.csv and header is None:
        _header("", 1)  # an empty CSV file has no header either


def _header(text: str, number: int) -> list[str]:
    try:
        return parse.csv_header(text)
    except RowProblem as problem:
        raise InvalidInput([FieldProblem(("line", number), str(problem))]) from None


def _values(study_id: int, event: Event, owner: str, now: datetime) -> dict[str, Any]:
    return {
        "study_id": study_id,
        "participant_key": owner,
        "event_id": event.event_id,
        "at": event.at,
        "kind": event.kind,
        "count": event.count,
        "imported_at": now,
    }


def _insert(session: Session, batch: Sequence[dict[str, Any]], result: ImportResult) -> None:
    """Insert the batch, skipping events already loaded; count both exactly."""
    if session.get_bind().dialect.name == "postgresql":
        taken = _insert_postgresql(session, batch)
    else:
        statement = (
            sqlite.insert(EVENTS)
            .on_conflict_do_nothing(index_elements=["study_id", "event_id"])
            .returning(EVENTS.c.id)
        )
        taken = len(session.execute(statement, list(batch)).all())
    result.accepted += taken
    result.duplicates += len(batch) - taken


# One statement per batch with one array per column: psycopg parses a multi-row VALUES
# of 35,000 parameters anew for each batch (most of the load's time, measured), an
# array parameter costs nothing to parse.
_UNNEST = text(
    """
    WITH taken AS (
        INSERT INTO engagement_events
            (study_id, participant_key, event_id, at, kind, count, imported_at)
        SELECT :study_id, p, e, a, k, c, :imported_at
        FROM unnest(
            CAST(:participants AS varchar[]), CAST(:event_ids AS varchar[]),
            CAST(:ats AS timestamptz[]), CAST(:kinds AS varchar[]), CAST(:counts AS integer[])
        ) AS t(p, e, a, k, c)
        ON CONFLICT (study_id, event_id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM taken
    """
)


def _insert_postgresql(session: Session, batch: Sequence[dict[str, Any]]) -> int:
    """The batch inserted through arrays (PostgreSQL); how many rows were taken."""
    first = batch[0]
    taken = session.execute(
        _UNNEST,
        {
            "study_id": first["study_id"],
            "imported_at": first["imported_at"],
            "participants": [row["participant_key"] for row in batch],
            "event_ids": [row["event_id"] for row in batch],
            "ats": [row["at"] for row in batch],
            "kinds": [row["kind"] for row in batch],
            "counts": [row["count"] for row in batch],
        },
    ).scalar_one()
    return int(taken)


def count_events(session: Session, *, study: Study) -> int:
    """How many events the study holds."""
    query = select(func.count()).select_from(EVENTS).where(EVENTS.c.study_id == study.id)
    return int(session.scalar(query) or 0)


def summaries(session: Session, *, study: Study) -> list[Summary]:
    """Each randomized participant's use of the intervention (`usage`), in the order of
    the exports (`export_order`), counted by the database: one GROUP BY query per
    participant over their events (by their keys, `keyed`), whatever their number."""
    people = (
        select(
            Participant.id,
            Participant.code,
            Allocation.arm,
            Participant.randomized_at,
            Participant.withdrawal_kind,
            Participant.withdrawn_at,
        )
        .join(Allocation, Allocation.participant_id == Participant.id)
        .where(Participant.study_id == study.id)
        .order_by(Participant.export_order)
    )
    keys = current_keys_of(session)
    found = []
    for pid, code, arm, randomized_at, kind, withdrawn_at in session.execute(people):
        summary = Summary(pid, code, arm, randomized_at)
        if randomized_at is not None:
            owners = list(keyed.keys_by_owner(keys, study.id, [pid]))
            cut_off = withdrawn_at if kind == LeavingKind.data else None
            _count(session, summary, study=study, owners=owners, cut_off=cut_off)
        found.append(summary)
    return found


def _count(
    session: Session,
    summary: Summary,
    *,
    study: Study,
    owners: list[str],
    cut_off: datetime | None,
) -> None:
    """Fold into `summary` the events that count (`usage`): the participant's (by any
    of their keys), from their randomization on, and before a withdrawal of consent to
    the use of their data; totals by kind, and the weeks of follow-up with an event."""
    assert summary.randomized_at is not None
    start = bindparam("randomized_at", summary.randomized_at, type_=EVENTS.c.at.type)
    week = _week(session, start).label("week")
    counted = [
        EVENTS.c.study_id == study.id,
        EVENTS.c.participant_key.in_(owners),
        EVENTS.c.at >= start,
    ]
    if cut_off is not None:
        counted.append(EVENTS.c.at < cut_off)
    query = (
        select(
            EVENTS.c.kind,
            week,
            func.sum(EVENTS.c.count),
            func.min(EVENTS.c.at),
            func.max(EVENTS.c.at),
        )
        .where(*counted)
        .group_by(EVENTS.c.kind, week)
    )
    weeks = set()
    for kind, number, total, first, last in session.execute(query):
        summary.add(kind, int(total), first, last)
        weeks.add(number)
    summary.active_weeks = len(weeks)


def _week(session: Session, start: ColumnElement[Any]) -> ColumnElement[Any]:
    """The week of the participant's follow-up an event falls in (0: days 0-6 after
    randomization, `start`)."""
    if session.get_bind().dialect.name == "postgresql":
        seconds = func.extract("epoch", EVENTS.c.at - start)
        return func.floor(seconds / (7 * 24 * 3600))
    days = func.julianday(EVENTS.c.at) - func.julianday(start)
    return cast(days / 7, Integer)  # SQLite truncates toward 0: days are never negative
