"""The DSMB report on a large trial: p99 of its page and its PDF at a fixed arrival rate.

Run from the project root (see benchmarks/README.md):

    python benchmarks/dsmb.py [--participants 10000] [--events 2000] [--rate 0.5]
        [--seconds 20] [--skip-postgres]

For each backend (SQLite always; PostgreSQL when it answers):

1. Setup: the database of `console.py` (`console_setup.setup`: the study `export-bench`,
   `--participants` randomized participants with three surveys each, some open or
   missed), then `--events` adverse events (one to three versions each: an initial
   report, a follow-up for one in two, a closure for one in three; one in five serious,
   a few fatal, MedDRA organ classes from a list of eight, some not coded) and one
   protocol deviation per 50 participants, written straight through the models (their
   fields sealed as they are inserted), with a fixed seed.
2. A server (uvicorn, one process); the demo admin signed in to the console as a
   browser is (cookie) and by its API token.
3. Each of these for `--seconds` at `--rate` requests a second (open loop,
   `driver.open_loop`: latency counted from the scheduled start), one after the other:
   the console page of the open part, of the closed part (audited: a write each), the
   PDF of the open part, of the closed part, and the JSON of the open part (the same
   counting without drawing).

It prints p50, p99 and max of each, and whether the server kept up with the rate.
Exit status: 0 when the measurement ran; 1 when it could not; 2 when requests failed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.config import Settings
from app.db.engine import Database
from app.demo import DEMO_ADMIN_EMAIL
from app.participants.models import Participant
from app.safety.models import (
    AdverseEvent,
    AdverseEventVersion,
    ProtocolDeviation,
    ProtocolDeviationVersion,
)
from app.studies.models import Study
from benchmarks.console_setup import API, STUDY, console_cookie, on_both_backends, setup
from benchmarks.driver import Figures, figures, open_loop, print_table
from tests.live import running_servers

CONSOLE = f"/console/studies/{STUDY}/reports"
SEED = 15
ORGAN_CLASSES = [
    "Psychiatric disorders",
    "Nervous system disorders",
    "Gastrointestinal disorders",
    "Infections and infestations",
    "Injury, poisoning and procedural complications",
    "General disorders and administration site conditions",
    "Musculoskeletal and connective tissue disorders",
    "Skin and subcutaneous tissue disorders",
]
KEEP_UP = 0.9


def add_safety(database_url: str, secret_key: str | None, *, events: int) -> None:
    """`events` adverse events and a deviation per 50 participants, spread over the
    participants with a fixed seed, inserted in bulk (sealed by the column types)."""
    rng = random.Random(SEED)
    db = Database(Settings(database_url=database_url, secret_key=secret_key))
    now = datetime.now(UTC)
    try:
        with Session(db.engine) as session, session.begin():
            study_id = session.scalars(select(Study.id).where(Study.slug == STUDY)).one()
            admin = session.scalars(select(User.id).where(User.email == DEMO_ADMIN_EMAIL)).one()
            people = session.execute(
                select(Participant.id, Participant.site_id).where(Participant.study_id == study_id)
            ).all()
            rows: list[dict[str, Any]] = []
            versions: list[dict[str, Any]] = []
            for n in range(1, events + 1):
                pid, site = rng.choice(people)
                serious = rng.random() < 0.2
                fatal = serious and rng.random() < 0.05
                first: dict[str, Any] = {
                    "AETERM": f"event {n}",
                    "AESTDTC": "2026-10-01",
                    "aware_on": "2026-10-02",
                    "AESEV": rng.choice(["mild", "moderate", "severe"]),
                    "AESER": serious,
                    "AESHOSP": serious and not fatal,
                    "AESDTH": fatal,
                    "AEREL": rng.choice(["not_related", "unlikely", "possible"]),
                    "AEEXPECT": rng.random() < 0.7,
                    "AEOUT": "fatal" if fatal else "recovering",
                    "AEACN": "none",
                }
                if rng.random() < 0.8:
                    first |= {"AEBODSYS": rng.choice(ORGAN_CLASSES), "AEDECOD": f"Term {n % 40}"}
                kinds = [("initial", first)]
                if n % 2 == 0:
                    kinds.append(("follow_up", {"AESEV": "moderate", "note": "better"}))
                if n % 3 == 0:
                    kinds.append(("closure", {"AEOUT": "recovered" if not fatal else "fatal"}))
                rows.append(
                    {
                        "id": n,
                        "study_id": study_id,
                        "site_id": site,
                        "participant_id": pid,
                        "number": n,
                        "alert_id": None,
                        "versions": len(kinds),
                        "closed": n % 3 == 0,
                        "opened_at": now,
                        "opened_by": admin,
                    }
                )
                versions += [
                    {
                        "event_id": n,
                        "number": v,
                        "kind": kind,
                        "fields": fields,
                        "recorded_at": now,
                        "recorded_by": admin,
                    }
                    for v, (kind, fields) in enumerate(kinds, start=1)
                ]
            session.execute(insert(AdverseEvent), rows)
            session.execute(insert(AdverseEventVersion), versions)
            deviations = len(people) // 50
            session.execute(
                insert(ProtocolDeviation),
                [
                    {
                        "id": n,
                        "study_id": study_id,
                        "site_id": people[n * 50 - 1][1],
                        "participant_id": people[n * 50 - 1][0],
                        "number": n,
                        "state": "confirmed",
                        "source": None,
                        "versions": 1,
                        "created_at": now,
                        "created_by": admin,
                    }
                    for n in range(1, deviations + 1)
                ],
            )
            session.execute(
                insert(ProtocolDeviationVersion),
                [
                    {
                        "deviation_id": n,
                        "number": 1,
                        "kind": "initial",
                        "fields": {
                            "category": rng.choice(["consent_error", "outside_window", "other"]),
                            "important": n % 4 == 0,
                            "description": "late survey",
                        },
                        "recorded_at": now,
                        "recorded_by": admin,
                    }
                    for n in range(1, deviations + 1)
                ],
            )
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                for table in ("adverse_events", "protocol_deviations"):
                    connection.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
    finally:
        db.dispose()


def get(path: str, headers: dict[str, str]) -> Any:
    async def call(client: httpx.AsyncClient, index: int) -> httpx.Response:
        return await client.get(path, headers=headers)

    return call


def bench(name: str, env: dict[str, str], workdir: Path, args: argparse.Namespace) -> int:
    """Set up, measure and print one backend; the number of failed requests."""
    env = {**os.environ, **env}
    log = workdir / f"trialdesk-{name}.log"
    print(f"{name}: setting up ...", flush=True)
    token, _ = setup(env, participants=args.participants, log=log)
    started = time.perf_counter()
    add_safety(env["TRIALDESK_DATABASE_URL"], env.get("TRIALDESK_SECRET_KEY"), events=args.events)
    print(f"  {args.events} events written in {time.perf_counter() - started:.1f} s", flush=True)
    measured: list[Figures] = []
    slow: list[str] = []
    with running_servers(env, log=log) as (url,):
        cookie = {"Cookie": f"trialdesk_session={console_cookie(url, env)}"}
        bearer = {"Authorization": f"Bearer {token}"}
        targets = [
            ("console page, open part", f"{CONSOLE}/dsmb?part=open", cookie),
            ("console page, closed part", f"{CONSOLE}/dsmb?part=closed", cookie),
            ("PDF, open part", f"{CONSOLE}/dsmb.pdf?part=open", cookie),
            ("PDF, closed part", f"{CONSOLE}/dsmb.pdf?part=closed", cookie),
            ("API JSON, open part", f"{API}/reports/dsmb?part=open", bearer),
        ]
        for label, path, headers in targets:
            done = open_loop(
                url,
                get(path, headers),
                rate=args.rate,
                count=max(1, round(args.rate * args.seconds)),
                expect=lambda status: status == 200,
            )
            for example in done.failure_examples:
                print(f"  {label} failure: {example}")
            row = figures(f"{label} @{args.rate:g}/s", done, ["request"])
            print(f"  {label}: p50 {row.p50:.1f} ms, p99 {row.p99:.1f} ms", flush=True)
            measured.append(row)
            if row.per_second < KEEP_UP * args.rate:
                slow.append(label)
    print_table(
        f"{name}: DSMB report, {args.participants} participants, {args.events} events; "
        f"{args.seconds:g} s each at {args.rate:g}/s (open loop)",
        measured,
    )
    for label in slow:
        print(f"  {label}: the server did not keep up with {args.rate:g}/s (its queue grew)")
    return sum(m.failed for m in measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=0.5, help="requests/s of each")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of each")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    if min(args.participants, args.events) < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("participants and events must be 1 or more, rate and seconds over 0")
    return on_both_backends(bench, args, database="dsmb")


if __name__ == "__main__":
    sys.exit(main())
