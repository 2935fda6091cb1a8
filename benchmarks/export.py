"""The blinded CSV export: Trialdesk's API beside a raw SQL select written with csv.writer,
measured in the same run, and the server's peak memory as the study grows.

Run from the project root (see benchmarks/README.md):

    python benchmarks/export.py [--sizes 1000,10000] [--repeat 3] [--skip-postgres]

Options: `--sizes N,N,...` participants per study (default 1000,10000; each size is a
study of its own, on a fresh database), `--repeat N` exports timed per size (default 3;
the median is reported), `--skip-postgres`.

For each backend (SQLite always; PostgreSQL when it answers) and each size:

1. Setup. A fresh database (`trialdesk db upgrade`, `trialdesk demo` for an admin
   token); a server started to create, through the API, the study `export-bench` (the
   demo definition without `randomization.requires_completed` and without alerts, its
   schedule replaced by three timepoints, baseline at enrollment and month_4 and
   month_12 after randomization, each with one instrument of 40 choice items, 0 to 4,
   and one sum score), its sites PHL and PIT, and its activation; then that server is
   stopped and the participants are written straight into the database (SQLAlchemy Core
   inserts in batches: participants, their strata and allocations, and three completed
   survey instances each, with 40 answers and the score).
2. Trialdesk. A new server (uvicorn, one process) on that database. Its resident memory
   is read from `/proc/<pid>/status` (VmRSS) before the first export; then
   `GET /api/v1/studies/export-bench/exports/blinded?format=csv&shape=long` is
   downloaded `--repeat` times with httpx, streamed (time from the request to the last
   byte; the answer must be 200 with 3 rows per participant); then the process's peak
   resident memory (VmHWM) is read.
3. The baseline, in this process, after each download: one select over the same tables
   (participants, sites, allocations, survey instances, in the same order, with the
   same streaming: `yield_per` 500), the JSON answers and scores decoded, written with
   `csv.writer` (the same rows and columns: the participant's code for the pseudonym,
   the arm for the group) to a sink that only counts characters.

It prints, per backend, a table of participants, rows, MB sent, the median seconds of
the API and of the baseline, their ratio (target <= 2), and the server's memory (idle,
peak); then whether the peak at the largest size is under 150 MB, and how much it grew
from the smallest size ("flat": by at most 10%).

Exit status: 0 when the measurement ran (whether or not the targets are met); 1 when it
could not run; 2 when an export request failed or answered the wrong rows, which makes
the figures meaningless.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import Connection, Engine, insert, select, text, update

from app.auth.models import User
from app.config import Settings
from app.db.engine import Database
from app.demo import DEMO_ADMIN_EMAIL, demo_definition
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.randomization.models import Allocation, Stratum
from app.randomization.strata import stratum_key
from app.studies import service as studies
from app.studies.models import Site, Study
from app.studies.pseudonyms import export_order
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import window
from benchmarks.driver import REQUEST_TIMEOUT_S, BenchError, create_active_study, run_cli
from tests import pg
from tests.live import ServerFailed, running_server_processes, running_servers

STUDY = "export-bench"
CODE_PREFIX = "EB"
SITES = ("PHL", "PIT")
DIAGNOSES = ("schizophrenia_spectrum", "bipolar", "depressive")
ARMS = ("listserv", "bulletin_board", "control")  # the demo definition's arms
BLOCK_SIZE = 6
INSTRUMENT = "battery"
ITEMS = tuple(f"b{n:02d}" for n in range(1, 41))
SCORE = "battery_total"
# (code, anchor, day, open_before, close_after; days from the anchor to completion)
TIMEPOINTS = (
    ("baseline", "enrollment", 0, 0, 14, 1),
    ("month_4", "randomization", 120, 14, 28, 121),
    ("month_12", "randomization", 365, 14, 28, 366),
)
EXPORT_PATH = f"/api/v1/studies/{STUDY}/exports/blinded"
EXPORT_PARAMS = {"format": "csv", "shape": "long"}
# pseudonym, group, site, diagnosis, timepoint, planned_day, status, mode,
# days_from_randomization, items, score
COLUMNS = 9 + len(ITEMS) + 1
PLANNED_DAY = {code: day for code, _, day, *_ in TIMEPOINTS}
BATCH = 1000  # participants per insert transaction
YIELD_PER = 500  # as app.exports.service
RATIO_TARGET = 2.0
PEAK_TARGET_MB = 150.0
FLAT_TOLERANCE = 0.10  # "flat": the peak grows by at most this share from the smallest size


class RequestFailed(RuntimeError):
    """An export answered an error, or the wrong rows: the figures would be meaningless."""


# --- the study -------------------------------------------------------------------------
def batteries(count: int = 1) -> list[tuple[str, tuple[str, ...], str]]:
    """The 40 items as `count` instruments (code, items, sum score): one, `battery`, for
    the export; more (`battery_1`...) for a grid of timepoints x instruments."""
    if count == 1:
        return [(INSTRUMENT, ITEMS, SCORE)]
    size = -(-len(ITEMS) // count)
    chunks = [ITEMS[k : k + size] for k in range(0, len(ITEMS), size)]
    return [
        (f"{INSTRUMENT}_{n}", chunk, f"{INSTRUMENT}_{n}_total") for n, chunk in enumerate(chunks, 1)
    ]


def definition(instruments: int = 1) -> dict[str, Any]:
    """The demo definition with the benchmark's schedule: three timepoints of the 40
    choice items, as one instrument with a sum score (or `instruments` of them, each with
    its own)."""
    document = demo_definition()
    document["slug"] = STUDY
    document["title"] = "Export benchmark"
    document["code_prefix"] = CODE_PREFIX
    document["randomization"].pop("requires_completed", None)
    document["alerts"] = []
    codes = [code for code, _, _ in batteries(instruments)]
    document["schedule"] = [
        {
            "code": code, "anchor": anchor, "day": day, "open_before": before,
            "close_after": after, "instruments": codes,
        }
        for code, anchor, day, before, after, _ in TIMEPOINTS
    ]  # fmt: skip
    options = [[value, f"Option {value}"] for value in range(5)]
    document["instruments"] = [
        {
            "code": code,
            "title": "A battery of 40 questions" if instruments == 1 else f"Battery part {n}",
            "items": [
                {"code": item, "text": f"Question {item}", "type": "choice", "options": options}
                for item in items
            ],
            "scores": [{"code": score, "method": "sum", "items": list(items)}],
        }
        for n, (code, items, score) in enumerate(batteries(instruments), 1)
    ]
    return document


# --- the fill ------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    """Participant n of the fill (0-based): where, which stratum, which slot."""

    id: int
    code: str
    site: str
    diagnosis: str
    stratum: str
    sequence: int  # within the stratum, from 1
    enrolled_at: datetime

    @property
    def randomized_at(self) -> datetime:
        return self.enrolled_at + timedelta(days=1)


def people(count: int, *, first_id: int, start: datetime) -> list[Person]:
    """The participants of the fill: sites and diagnoses in turn, one enrollment a minute."""
    sequences: dict[str, int] = {}
    out = []
    for n in range(count):
        site = SITES[n % len(SITES)]
        diagnosis = DIAGNOSES[(n // len(SITES)) % len(DIAGNOSES)]
        key = stratum_key(site=site, factors=["diagnosis"], levels={"diagnosis": diagnosis})
        sequences[key] = sequences.get(key, 0) + 1
        number = n // len(SITES) + 1
        out.append(
            Person(
                id=first_id + n,
                code=f"{CODE_PREFIX}-{site}-{number:04d}",
                site=site,
                diagnosis=diagnosis,
                stratum=key,
                sequence=sequences[key],
                enrolled_at=start + timedelta(minutes=n),
            )
        )
    return out


def fill(
    database_url: str,
    *,
    participants: int,
    zone: ZoneInfo,
    secret_key: str | None,
    instruments: int = 1,
) -> None:
    """Write `participants` randomized participants, each with three completed surveys
    (of `instruments` instruments, as `definition`), straight into the database (the
    server must not be running on SQLite)."""
    # The database's keys seal arms, answers and scores as they are inserted.
    db = Database(Settings(database_url=database_url, secret_key=secret_key))
    engine = db.engine
    try:
        with engine.begin() as connection:
            study_id = connection.scalar(select(Study.id).where(Study.slug == STUDY))
            admin_id = connection.scalar(select(User.id).where(User.email == DEMO_ADMIN_EMAIL))
            found = connection.execute(select(Site.code, Site.id).where(Site.study_id == study_id))
            sites: dict[str, int] = {code: site_id for code, site_id in found}
            first_id = (connection.scalar(text("SELECT MAX(id) FROM participants")) or 0) + 1
        if study_id is None or admin_id is None or set(sites) != set(SITES):
            raise BenchError(f"the study {STUDY}, its sites or the demo admin are missing")
        key = _blinding_key(database_url, secret_key)
        now = datetime.now(UTC)
        everyone = people(participants, first_id=first_id, start=now - timedelta(days=800))
        with engine.begin() as connection:
            strata = _insert_strata(connection, study_id, everyone)
            for site, site_id in sites.items():
                issued = sum(1 for p in everyone if p.site == site)
                connection.execute(
                    update(Site).where(Site.id == site_id).values(last_participant_number=issued)
                )
        for start in range(0, participants, BATCH):
            batch = everyone[start : start + BATCH]
            with engine.begin() as connection:
                _insert_batch(
                    connection, batch, study_id=study_id, admin_id=admin_id,
                    sites=sites, strata=strata, zone=zone, now=now, key=key,
                    instruments=batteries(instruments),
                )  # fmt: skip
        _settle(engine)
    finally:
        db.dispose()


def _blinding_key(database_url: str, secret_key: str | None) -> bytes:
    """The study's blinding key, which its participants' export order comes from."""
    db = Database(Settings(database_url=database_url, secret_key=secret_key))
    try:
        with db.session(write=False) as session:
            study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
            return studies.blinding_key_of(session, study)
    finally:
        db.dispose()


def _insert_strata(connection: Connection, study_id: int, everyone: list[Person]) -> dict[str, int]:
    """One row per stratum, with its final position; the ids by key."""
    last: dict[str, int] = {}
    for person in everyone:
        last[person.stratum] = max(last.get(person.stratum, 0), person.sequence)
    rows = []
    for key, allocated in last.items():
        block, position = _slot(allocated)
        rows.append(
            {
                "study_id": study_id, "key": key, "allocated": allocated, "last_block": block,
                "last_block_size": BLOCK_SIZE, "last_position": position,
            }
        )  # fmt: skip
    connection.execute(insert(Stratum), rows)
    found = connection.execute(select(Stratum.key, Stratum.id).where(Stratum.study_id == study_id))
    return {key: stratum_id for key, stratum_id in found}


def _slot(sequence: int) -> tuple[int, int]:
    """Block and position of the stratum's `sequence`th slot (blocks of BLOCK_SIZE)."""
    return (sequence - 1) // BLOCK_SIZE + 1, (sequence - 1) % BLOCK_SIZE + 1


def _insert_batch(
    connection: Connection,
    batch: Sequence[Person],
    *,
    study_id: int,
    admin_id: int,
    sites: dict[str, int],
    strata: dict[str, int],
    zone: ZoneInfo,
    now: datetime,
    key: bytes,
    instruments: list[tuple[str, tuple[str, ...], str]],
) -> None:
    codes = [code for code, _, _ in instruments]
    screening = {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True}
    participants, allocations, surveys = [], [], []
    for p in batch:
        participants.append(
            {
                "id": p.id, "study_id": study_id, "site_id": sites[p.site], "code": p.code,
                "export_order": export_order(key, p.code),
                "status": ParticipantStatus.randomized.value, "screening": screening,
                "ineligible_reasons": None, "strata": {"diagnosis": p.diagnosis},
                "stratum": p.stratum, "consent_version": "1.0", "screened_at": p.enrolled_at,
                "enrolled_at": p.enrolled_at, "randomized_at": p.randomized_at,
                "created_by": admin_id,
            }
        )  # fmt: skip
        block, position = _slot(p.sequence)
        allocations.append(
            {
                "study_id": study_id, "stratum_id": strata[p.stratum], "participant_id": p.id,
                "participant_code": p.code, "sequence": p.sequence, "block": block,
                "block_size": BLOCK_SIZE, "position": position,
                "arm": ARMS[(p.sequence - 1) % len(ARMS)], "randomized_by": admin_id,
                "randomized_at": p.randomized_at,
            }
        )  # fmt: skip
        for t, (code, anchor, day, before, after, done) in enumerate(TIMEPOINTS):
            anchor_at = p.enrolled_at if anchor == "enrollment" else p.randomized_at
            span = window(anchor_at, zone, day=day, open_before=before, close_after=after)
            completed_at = min(anchor_at + timedelta(days=done), now)
            answers = {
                item: (p.id * 31 + i * i + 7 * i + 13 * t) % 5 for i, item in enumerate(ITEMS)
            }
            token = hashlib.sha256(f"export-bench|{p.id}|{code}".encode()).hexdigest()
            surveys.append(
                {
                    "study_id": study_id, "site_id": sites[p.site], "participant_id": p.id,
                    "participant_code": p.code, "timepoint": code, "instruments": codes,
                    "anchor_at": anchor_at, "opens_on": span.opens_on,
                    "closes_on": span.closes_on, "issue": 1, "token_hash": token,
                    "answers": answers,
                    "scores": {
                        score: float(sum(answers[item] for item in items))
                        for _, items, score in instruments
                    },
                    "messages_enqueued": 1, "saved_at": completed_at,
                    "completed_at": completed_at, "cancelled_at": None, "created_at": anchor_at,
                }
            )  # fmt: skip
    connection.execute(insert(Participant), participants)
    connection.execute(insert(Allocation), allocations)
    connection.execute(insert(SurveyInstance), surveys)


def _settle(engine: Engine) -> None:
    """After the fill, what a database in service would have done by itself: PostgreSQL's
    sequence moved past the ids written, VACUUM ANALYZE (statistics, visibility and hint
    bits, so no export pays for them); SQLite's WAL checkpointed into the database."""
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('participants', 'id'), "
                    "(SELECT MAX(id) FROM participants))"
                )
            )
            for table in ("participants", "strata", "allocations", "survey_instances"):
                connection.execute(text(f"VACUUM ANALYZE {table}"))
        else:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


# --- the measurements ------------------------------------------------------------------
@dataclass(frozen=True)
class Download:
    seconds: float
    characters: int  # bytes from the API, characters from the baseline
    rows: int  # data rows, without the header
    columns: int


def api_export(client: httpx.Client, *, expected_rows: int) -> Download:
    """Download the blinded CSV export, streamed; the time from the request to its last
    byte. RequestFailed unless it is a 200 with the expected rows."""
    started = time.perf_counter()
    size = lines = 0
    head = b""
    try:
        with client.stream("GET", EXPORT_PATH, params=EXPORT_PARAMS) as response:
            if response.status_code != 200:
                response.read()
                raise RequestFailed(f"HTTP {response.status_code}: {response.text[:300]}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
                if b"\n" not in head:
                    head += chunk[:4096]
    except httpx.HTTPError as exc:
        raise RequestFailed(f"{type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - started
    header = next(csv.reader([head.split(b"\r\n", 1)[0].decode()]), [])
    download = Download(seconds, size, lines - 1, len(header))
    if download.rows != expected_rows or download.columns != COLUMNS:
        raise RequestFailed(
            f"{download.rows} rows of {download.columns} columns; "
            f"expected {expected_rows} of {COLUMNS}"
        )
    return download


class NullSink:
    """A file that keeps nothing: it counts the characters written to it."""

    def __init__(self) -> None:
        self.characters = 0

    def write(self, text: str) -> int:
        self.characters += len(text)
        return len(text)


def raw_export(engine: Engine, *, study_id: int) -> Download:
    """The baseline: one select of the same values, streamed as the API's is, each row
    written with csv.writer (arms, answers and scores opened and decoded from JSON by the
    sealed column types, as any reader must: `engine` is a `Database`'s, with its keys)."""
    query = (
        select(
            Participant.code,
            Allocation.arm,
            Site.code.label("site"),
            Participant.strata,
            Participant.randomized_at,
            SurveyInstance.timepoint,
            SurveyInstance.completed_at,
            SurveyInstance.mode,
            SurveyInstance.answers,
            SurveyInstance.scores,
        )
        .join(Site, Site.id == Participant.site_id)
        .outerjoin(Allocation, Allocation.participant_id == Participant.id)
        .outerjoin(SurveyInstance, SurveyInstance.participant_id == Participant.id)
        .where(Participant.study_id == study_id)
        .order_by(Participant.id, SurveyInstance.id)
    )
    sink = NullSink()
    writer = csv.writer(sink, lineterminator="\r\n")
    started = time.perf_counter()
    header = ["pseudonym", "group", "site", "diagnosis", "timepoint", "planned_day",
              "status", "mode", "days_from_randomization", *ITEMS, SCORE]  # fmt: skip
    writer.writerow(header)
    rows = 0
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=YIELD_PER).execute(query)
        for row in result:
            answers: dict[str, Any] = row.answers or {}
            scores: dict[str, Any] = row.scores or {}
            days = (
                (row.completed_at.date() - row.randomized_at.date()).days
                if row.completed_at is not None and row.randomized_at is not None
                else None
            )
            writer.writerow(
                [
                    row.code, row.arm, row.site, (row.strata or {}).get("diagnosis"),
                    row.timepoint, PLANNED_DAY.get(row.timepoint),
                    "completed" if row.completed_at else "open",
                    row.mode if row.completed_at else None, days,
                    *(answers.get(item) for item in ITEMS), scores.get(SCORE),
                ]
            )  # fmt: skip
            rows += 1
    return Download(time.perf_counter() - started, sink.characters, rows, len(header))


def memory_kb(pid: int) -> dict[str, int]:
    """The process's VmRSS and VmHWM (peak resident memory), in kB, from /proc."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0])
    return figures


@dataclass
class SizeResult:
    participants: int
    api: list[Download] = field(default_factory=list)
    raw: list[Download] = field(default_factory=list)
    idle_rss_kb: int = 0
    start_hwm_kb: int = 0
    peak_kb: int = 0

    @property
    def rows(self) -> int:
        return self.api[0].rows

    @property
    def api_s(self) -> float:
        return statistics.median(d.seconds for d in self.api)

    @property
    def raw_s(self) -> float:
        return statistics.median(d.seconds for d in self.raw)

    @property
    def ratio(self) -> float:
        return self.api_s / self.raw_s if self.raw_s else float("inf")


def bench_size(
    name: str, env: dict[str, str], *, participants: int, repeat: int, workdir: Path
) -> SizeResult:
    """Set up one study of `participants` on the fresh database of `env`; measure it."""
    env = {**os.environ, **env}
    database_url = env["TRIALDESK_DATABASE_URL"]
    log = workdir / "trialdesk.log"
    print(f"{name}, {participants} participants: setting up ...", flush=True)
    run_cli(["db", "upgrade"], env=env)
    lines = run_cli(["demo"], env=env).strip().splitlines()
    if not lines:
        raise BenchError("trialdesk demo printed no token")
    admin_token = lines[-1].strip()
    document = definition()
    with running_servers(env, log=log) as (url,):
        create_active_study(url, admin_token, document, SITES)
    started = time.perf_counter()
    fill(
        database_url,
        participants=participants,
        zone=ZoneInfo(document["timezone"]),
        secret_key=env.get("TRIALDESK_SECRET_KEY"),
    )
    print(f"  filled in {time.perf_counter() - started:.1f} s; exporting ...", flush=True)
    result = SizeResult(participants)
    db = Database(Settings(database_url=database_url, secret_key=env.get("TRIALDESK_SECRET_KEY")))
    engine = db.engine
    try:
        with engine.connect() as connection:
            study_id = connection.scalar(select(Study.id).where(Study.slug == STUDY))
        if study_id is None:
            raise BenchError(f"the study {STUDY} is missing")
        with (
            running_server_processes(env, log=log) as (server,),
            httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {admin_token}"},
                timeout=REQUEST_TIMEOUT_S,
            ) as client,
        ):
            pid = server.process.pid
            idle = memory_kb(pid)
            result.idle_rss_kb, result.start_hwm_kb = idle["VmRSS"], idle["VmHWM"]
            for _ in range(repeat):  # alternately, so both see the same machine
                result.api.append(api_export(client, expected_rows=3 * participants))
                result.raw.append(raw_export(engine, study_id=study_id))
            result.peak_kb = memory_kb(pid)["VmHWM"]
    finally:
        db.dispose()
    if any(d.rows != result.rows or d.columns != COLUMNS for d in result.raw):
        raise BenchError(f"the baseline wrote {result.raw[0].rows} rows, not {result.rows}")
    api_runs = " ".join(f"{d.seconds:.2f}" for d in result.api)
    raw_runs = " ".join(f"{d.seconds:.2f}" for d in result.raw)
    print(f"  API runs (s): {api_runs}   baseline runs (s): {raw_runs}", flush=True)
    return result


# --- the report -----------------------------------------------------------------------
def _mb(kb: int) -> float:
    return kb / 1024


def report(name: str, results: list[SizeResult]) -> None:
    title = (
        f"{name}: blinded CSV export (long) through the API beside a raw select + "
        f"csv.writer; {len(TIMEPOINTS)} timepoints x {len(ITEMS)} items"
    )
    print(f"\n{title}\n{'-' * len(title)}")
    heads = ("participants", "rows", "MB sent", "API s", "raw s", "ratio", "target",
             "idle RSS MB", "peak RSS MB")  # fmt: skip
    print(" ".join(f"{head:>12}" for head in heads))
    for r in results:
        verdict = "met" if r.ratio <= RATIO_TARGET else "NOT met"
        print(
            f"{r.participants:12d} {r.rows:12d} {r.api[0].characters / 1e6:12.1f} "
            f"{r.api_s:12.2f} {r.raw_s:12.2f} {r.ratio:12.2f} {verdict:>12} "
            f"{_mb(r.idle_rss_kb):12.1f} {_mb(r.peak_kb):12.1f}"
        )
    print(f"ratio = median API seconds / median raw seconds; target <= {RATIO_TARGET:g}")
    smallest, largest = results[0], results[-1]
    peak = _mb(largest.peak_kb)
    verdict = "met" if peak <= PEAK_TARGET_MB else "NOT met"
    line = (
        f"server peak RSS at {largest.participants} participants: {peak:.1f} MB"
        f"   target < {PEAK_TARGET_MB:.0f} MB: {verdict}"
    )
    if len(results) > 1:
        grown = largest.peak_kb - smallest.peak_kb
        share = grown / smallest.peak_kb if smallest.peak_kb else 0.0
        flat = "flat" if share <= FLAT_TOLERANCE else "NOT flat"
        line += (
            f"\n  {grown / 1024:+.1f} MB ({share:+.0%}) from {smallest.participants} "
            f"participants: {flat} (at most {FLAT_TOLERANCE:.0%})"
        )
    print(line)
    for r in results:
        print(
            f"  {r.participants} participants: peak during start-up {_mb(r.start_hwm_kb):.1f} MB,"
            f" after the exports {_mb(r.peak_kb):.1f} MB"
        )


def bench_sqlite(sizes: list[int], repeat: int) -> list[SizeResult]:
    results = []
    for participants in sizes:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
            workdir = Path(tmp)
            env = {"TRIALDESK_DATABASE_URL": f"sqlite:///{workdir}/export.db"}
            results.append(
                bench_size("SQLite", env, participants=participants, repeat=repeat, workdir=workdir)
            )
    return results


def bench_postgres(sizes: list[int], repeat: int) -> list[SizeResult]:
    results = []
    for participants in sizes:
        database = pg.create_database("trialdesk_bench_export")
        try:
            with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
                env = {
                    "TRIALDESK_DATABASE_URL": pg.database_url(database),
                    "TRIALDESK_SECRET_KEY": secrets.token_urlsafe(30)[:40],
                }
                workdir = Path(tmp)
                result = bench_size(
                    "PostgreSQL", env, participants=participants, repeat=repeat, workdir=workdir
                )
                results.append(result)
        finally:
            pg.drop_database(database)
    return results


def sizes_list(value: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("participants must be 1 or more")
    return sizes


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=sizes_list, default=[1000, 10000], help="participants, e.g. 1000,10000"
    )
    parser.add_argument("--repeat", type=positive, default=3, help="exports timed per size")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    try:
        report("SQLite", bench_sqlite(args.sizes, args.repeat))
        if args.skip_postgres:
            print("\nPostgreSQL: skipped (--skip-postgres)")
        elif not pg.available():
            print(f"\nPostgreSQL: skipped ({pg.PG_URL} does not answer)")
        else:
            print()
            report("PostgreSQL", bench_postgres(args.sizes, args.repeat))
    except RequestFailed as exc:
        print(f"an export failed: {exc}; the figures are not valid", file=sys.stderr)
        return 2
    except (BenchError, ServerFailed) as exc:
        print(f"the benchmark could not run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
