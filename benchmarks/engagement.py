"""Engagement import: rows per second for a million events, and the peak memory of the
load as the file grows (it must stay flat: the file is read line by line and inserted in
batches).

Run from the project root (see benchmarks/README.md):

    python benchmarks/engagement.py [--sizes 100000,1000000] [--participants 300] [--skip-postgres]

For each backend (SQLite always; PostgreSQL when the server in `TRIALDESK_TEST_PG_URL`
answers) and each size, on a fresh migrated database with the demo study and
`--participants` participants written straight into it:

1. a CSV file of that many events (a fixed seed: participants by code, a third by their
   export pseudonym; kinds post, reply, login, email_read; times over a year) is written
   to a temporary folder;
2. `app.engagement.service.import_events` loads it (a transaction per batch), as
   `POST /api/v1/studies/{slug}/engagement` and `trialdesk engagement load` do, timed
   (the commit included);
3. the same file is loaded again, every row a duplicate (the cost of a re-sent file:
   the same reading, parsing and batches), with Python's allocations traced
   (`tracemalloc`, which slows it: its time is not the figure to quote): the peak of
   what a load holds at once, which must not grow with the file.

It prints a table per backend: events, MB, seconds and rows/s of the first and second
load, and the traced peak; then whether the peak at the largest size is within 10% (or
2 MB) of the smallest's ("flat").

Exit status: 0 when the measurement ran; 1 when it could not.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from sqlalchemy import insert, select

from app.config import Settings
from app.db.engine import Database
from app.db.schema import alembic_config
from app.demo import load_demo
from app.engagement import service as engagement
from app.engagement.rows import FileFormat
from app.participants.models import Participant
from app.studies import service as studies
from app.studies.models import Site, Study
from app.studies.pseudonyms import export_order, pseudonym
from tests import pg

KINDS = ("post", "reply", "login", "login", "email_read")
SEED = 20261208
BENCH_KEY = "engagement-benchmark-key-" + "k" * 24  # a throw-away database's


@dataclass
class Result:
    events: int
    mb: float
    first_s: float
    again_s: float
    peak_mb: float
    accepted: int
    duplicates: int


def setup(settings: Settings, participants: int) -> tuple[Database, list[str]]:
    """A migrated database with the demo study and `participants` enrolled; the names a
    file may use for them (codes, and for every third one the export pseudonym)."""
    command.upgrade(alembic_config(settings.database_url), "head")
    db = Database(settings)
    now = datetime.now(UTC)
    with db.begin() as session:
        load_demo(session)
        study = session.scalars(select(Study).where(Study.slug == "peer-support")).one()
        site = session.scalars(select(Site).where(Site.study_id == study.id)).first()
        assert site is not None
        key = studies.blinding_key_of(session, study)
        codes = [f"BENCH-{i:05d}" for i in range(participants)]
        session.execute(
            insert(Participant),
            [
                {
                    "study_id": study.id,
                    "site_id": site.id,
                    "code": code,
                    "export_order": export_order(key, code),
                    "status": "randomized",
                    "screening": {},
                    "screened_at": now - timedelta(days=400),
                    "enrolled_at": now - timedelta(days=400),
                    "randomized_at": now - timedelta(days=399),
                }
                for code in codes
            ],
        )
        names = [pseudonym(key, c) if i % 3 == 0 else c for i, c in enumerate(codes)]
    return db, names


def write_file(path: Path, events: int, names: list[str]) -> None:
    """`events` rows of CSV with a fixed seed, times over the last year."""
    rng = random.Random(SEED)
    start = datetime.now(UTC) - timedelta(days=365)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["event_id", "participant", "at", "kind", "count"])
        for i in range(events):
            at = start + timedelta(seconds=rng.randrange(365 * 24 * 3600))
            kind = KINDS[rng.randrange(len(KINDS))]
            writer.writerow([f"ev-{i}", names[rng.randrange(len(names))], at.isoformat(), kind, 1])


def load(db: Database, path: Path) -> tuple[float, engagement.ImportResult]:
    started = time.perf_counter()
    with db.session(write=True) as session, path.open("rb") as source:
        study = session.scalars(select(Study).where(Study.slug == "peer-support")).one()
        result = engagement.import_events(
            session,
            study=study,
            source=source,
            fmt=FileFormat.csv,
            actor=None,
            now=datetime.now(UTC),
        )
        session.commit()
    return time.perf_counter() - started, result


SettingsMaker = Callable[[], tuple[Settings, Callable[[], None]]]


def bench(settings_for: SettingsMaker, sizes: list[int], participants: int) -> list[Result]:
    results = []
    for size in sizes:
        settings, cleanup = settings_for()
        try:
            db, names = setup(settings, participants)
            with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as folder:
                path = Path(folder) / "events.csv"
                write_file(path, size, names)
                first_s, first = load(db, path)
                tracemalloc.start()
                again_s, again = load(db, path)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                assert first.accepted == size and again.duplicates == size, (first, again)
                result = Result(
                    size,
                    path.stat().st_size / 1e6,
                    first_s,
                    again_s,
                    peak / 1e6,
                    first.accepted,
                    again.duplicates,
                )
                print(f"  {size:,} events: {size / first_s:,.0f} rows/s", flush=True)
                results.append(result)
            db.dispose()
        finally:
            cleanup()
    return results


def sqlite_settings() -> tuple[Settings, Callable[[], None]]:
    folder = tempfile.TemporaryDirectory(prefix="trialdesk-bench-")
    url = f"sqlite:///{folder.name}/trialdesk.db"
    settings = Settings(database_url=url, secret_key=BENCH_KEY, scheduler=False)  # type: ignore[arg-type]
    return settings, folder.cleanup


def postgres_settings() -> tuple[Settings, Callable[[], None]]:
    name = pg.create_database("trialdesk_bench")
    settings = Settings(database_url=pg.database_url(name), secret_key=BENCH_KEY, scheduler=False)  # type: ignore[arg-type]
    return settings, lambda: pg.drop_database(name)


def report(name: str, results: list[Result]) -> None:
    print(f"\n{name}")
    head = ("events", "MB", "load s", "rows/s", "again s", "rows/s", "peak MB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (10, 7, 8, 9, 8, 9, 8), strict=True)))
    for r in results:
        print(
            f"{r.events:>10,} {r.mb:>7.1f} {r.first_s:>8.1f} {r.events / r.first_s:>9,.0f} "
            f"{r.again_s:>8.1f} {r.events / r.again_s:>9,.0f} {r.peak_mb:>8.1f}"
        )
    low, high = results[0].peak_mb, results[-1].peak_mb
    flat = high <= max(low * 1.10, low + 2)
    print(f"peak traced memory {low:.1f} MB → {high:.1f} MB: {'flat' if flat else 'NOT flat'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    try:
        report("SQLite", bench(sqlite_settings, sizes, args.participants))
        if args.skip_postgres or not pg.available():
            print("\nPostgreSQL: skipped")
        else:
            report("PostgreSQL", bench(postgres_settings, sizes, args.participants))
    except Exception as exc:  # pragma: no cover - report and fail
        print(f"could not run: {exc!r}", file=sys.stderr)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
