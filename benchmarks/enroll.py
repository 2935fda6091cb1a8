"""Enrollment throughput: Trialdesk's enroll + randomize beside a minimal FastAPI baseline.

Run from the project root (see benchmarks/README.md):

    python benchmarks/enroll.py [--count 1000] [--clients 32] [--warmup 64] [--skip-postgres]

For each backend (SQLite always; PostgreSQL when it answers) the script starts two real
uvicorn servers, one after the other, each on a fresh database:

* the baseline (`benchmarks.baseline`): one sync endpoint that inserts one row with
  SQLAlchemy in one transaction and returns it. One operation is two such POSTs.
* Trialdesk (`app.main:create_app`), migrated, with a coordinator of sites PHL and PIT
  of a study made for the benchmark: the demo study's definition under another slug and
  without `randomization.requires_completed`. The demo study requires the baseline
  survey before randomization; what is measured here is enrollment and randomization,
  so the operation stays POST enroll, then POST randomize of that participant (a
  participant's survey pages are measured by `benchmarks/surveys.py`).

Exit status: 0 when the measurement ran (whether or not the targets are met); 1 when it
could not run; 2 when it ran but some requests failed, which makes the figures
meaningless.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.demo import demo_definition
from benchmarks.baseline import DATABASE_URL_ENV
from benchmarks.driver import (
    REQUEST_TIMEOUT_S,
    BenchError,
    Load,
    Recorder,
    create_active_study,
    figures,
    measure,
    print_table,
    run_cli,
    timed_post,
)
from tests import pg
from tests.live import ServerFailed, running_servers

STUDY = "peer-support-bench"
SITES = ("PHL", "PIT")
DIAGNOSES = ("schizophrenia_spectrum", "bipolar", "depressive")
ELIGIBLE = {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True}
P99_TARGET_MS = 50.0
RATIO_TARGET = 0.5


def enrollment(index: int) -> dict[str, Any]:
    """A valid enrollment body for the demo study (the shape of tests.helpers.enrollment)."""
    return {
        "site": SITES[index % len(SITES)],
        "screening": dict(ELIGIBLE),
        "consent": {"version": "1.0"},
        "strata": {"diagnosis": DIAGNOSES[(index // len(SITES)) % len(DIAGNOSES)]},
        "contact": {
            "name": f"Bench Participant {index}",
            "email": f"participant{index}@example.org",
            "phone": "215-555-0100",
        },
    }


async def trialdesk_operation(client: httpx.AsyncClient, index: int, recorder: Recorder) -> None:
    participants = f"/api/v1/studies/{STUDY}/participants"
    created = await timed_post(
        client, recorder, "enroll", participants, expect=201, json=enrollment(index)
    )
    if created is None:
        recorder.fail("randomize", "not attempted: its enrollment failed")
        return
    if created.get("status") != "enrolled":
        recorder.fail("randomize", f"not attempted: enrollment answered {created}")
        return
    randomized = await timed_post(
        client, recorder, "randomize", f"{participants}/{created['code']}/randomize", expect=200
    )
    if randomized is not None and randomized.get("status") != "randomized":
        recorder.fail("randomize", f"answered {randomized}")


async def baseline_operation(client: httpx.AsyncClient, index: int, recorder: Recorder) -> None:
    body = enrollment(index)
    first = await timed_post(
        client, recorder, "insert", "/records", expect=201,
        json={"kind": "enroll", "site": body["site"], "data": body},
    )  # fmt: skip
    if first is None:
        recorder.fail("insert", "not attempted: the first insert failed")
        return
    await timed_post(
        client, recorder, "insert", "/records", expect=201,
        json={"kind": "randomize", "site": body["site"], "data": {"record": first["id"]}},
    )  # fmt: skip


@dataclass
class BackendResult:
    name: str
    load: Load
    trialdesk: Recorder
    baseline: Recorder

    @property
    def failed(self) -> int:
        return self.trialdesk.failed + self.baseline.failed


def report(result: BackendResult, *, p99_target: bool) -> None:
    rows = [
        figures("Trialdesk enroll", result.trialdesk, ["enroll"]),
        figures("Trialdesk randomize", result.trialdesk, ["randomize"]),
        figures("Trialdesk all", result.trialdesk, ["enroll", "randomize"]),
        figures("Baseline (insert one row)", result.baseline, ["insert"]),
    ]
    trialdesk_all, baseline = rows[2], rows[3]
    ratio = trialdesk_all.per_second / baseline.per_second if baseline.per_second else 0.0
    clients = result.load.clients
    print_table(
        f"{result.name}: {result.load.count} operations = {2 * result.load.count} requests, "
        f"{clients} concurrent clients",
        rows,
    )
    print(
        f"wall time: Trialdesk {result.trialdesk.wall_s:.2f} s, "
        f"baseline {result.baseline.wall_s:.2f} s"
    )
    verdict = "met" if ratio >= RATIO_TARGET else "NOT met"
    print(f"ratio (Trialdesk req/s / baseline req/s): {ratio:.2f}", end="   ")
    print(f"target >= {RATIO_TARGET}: {verdict}")
    if p99_target:
        verdict = "met" if trialdesk_all.p99 < P99_TARGET_MS else "NOT met"
        print(f"Trialdesk p99: {trialdesk_all.p99:.1f} ms", end="   ")
        print(f"target < {P99_TARGET_MS:.0f} ms: {verdict}")
        print(
            f"  (closed loop: mean latency ~ {clients} clients / throughput, so a p99 under "
            f"{P99_TARGET_MS:.0f} ms needs more than {clients / (P99_TARGET_MS / 1000):.0f} req/s)"
        )
    for recorder, name in ((result.trialdesk, "Trialdesk"), (result.baseline, "baseline")):
        for example in recorder.failure_examples:
            print(f"  {name} failure: {example}")


def run_baseline(database_url: str, load: Load, workdir: Path) -> Recorder:
    env = {DATABASE_URL_ENV: database_url}
    log = workdir / "baseline.log"
    with running_servers(env, app="benchmarks.baseline:create_app", log=log) as (url,):
        return measure(url, baseline_operation, load, headers={})


def run_trialdesk(env: dict[str, str], load: Load, workdir: Path) -> Recorder:
    env = {**os.environ, **env}
    run_cli(["db", "upgrade"], env=env)
    lines = run_cli(["demo"], env=env).strip().splitlines()
    if not lines:
        raise BenchError("trialdesk demo printed no token")
    admin_token = lines[-1].strip()
    with running_servers(env, log=workdir / "trialdesk.log") as (url,):
        create_study(url, admin_token)
        coordinator = {
            "email": f"bench-{secrets.token_hex(4)}@example.org",
            "name": "Benchmark coordinator",
            "role": "coordinator",
            "sites": [{"study": STUDY, "site": site} for site in SITES],
        }
        response = httpx.post(
            f"{url}/api/v1/users",
            json=coordinator,
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=REQUEST_TIMEOUT_S,
        )
        if response.status_code != 201:
            raise BenchError(f"creating the coordinator: {response.status_code} {response.text}")
        headers = {"Authorization": f"Bearer {response.json()['token']}"}
        return measure(url, trialdesk_operation, load, headers)


def create_study(url: str, admin_token: str) -> None:
    """The demo study's definition, without the baseline requirement, activated with
    the demo's sites."""
    definition = demo_definition()
    definition["slug"] = STUDY
    definition["randomization"].pop("requires_completed", None)
    create_active_study(url, admin_token, definition, SITES)


def bench_sqlite(load: Load) -> BackendResult:
    with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
        workdir = Path(tmp)
        print(f"SQLite: baseline in {workdir}/baseline.db ...", flush=True)
        baseline = run_baseline(f"sqlite:///{workdir}/baseline.db", load, workdir)
        print(f"SQLite: Trialdesk in {workdir}/bench.db ...", flush=True)
        env = {"TRIALDESK_DATABASE_URL": f"sqlite:///{workdir}/bench.db"}
        trialdesk = run_trialdesk(env, load, workdir)
    return BackendResult("SQLite", load, trialdesk, baseline)


def bench_postgres(load: Load) -> BackendResult:
    created: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
            workdir = Path(tmp)
            created += [pg.create_database("trialdesk_bench_base")]
            print(f"PostgreSQL: baseline in database {created[-1]} ...", flush=True)
            baseline = run_baseline(pg.database_url(created[-1]), load, workdir)
            created += [pg.create_database("trialdesk_bench")]
            print(f"PostgreSQL: Trialdesk in database {created[-1]} ...", flush=True)
            env = {
                "TRIALDESK_DATABASE_URL": pg.database_url(created[-1]),
                "TRIALDESK_SECRET_KEY": secrets.token_urlsafe(30)[:40],
            }
            trialdesk = run_trialdesk(env, load, workdir)
    finally:
        for name in created:
            pg.drop_database(name)
    return BackendResult("PostgreSQL", load, trialdesk, baseline)


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Trialdesk enroll+randomize throughput beside a minimal FastAPI baseline."
    )
    parser.add_argument("--count", type=positive, default=1000, help="operations (participants)")
    parser.add_argument("--clients", type=positive, default=32, help="concurrent clients")
    parser.add_argument(
        "--warmup",
        type=int,
        default=64,
        help="operations run first and not counted (at least --clients, to open every connection)",
    )
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    warmup = max(args.warmup, args.clients) if args.warmup > 0 else 0
    load = Load(count=args.count, clients=args.clients, warmup=warmup)

    results: list[BackendResult] = []
    try:
        results.append(bench_sqlite(load))
        report(results[-1], p99_target=True)
        if args.skip_postgres:
            print("\nPostgreSQL: skipped (--skip-postgres)")
        elif not pg.available():
            print("\nPostgreSQL: skipped (nothing answers; set TRIALDESK_TEST_PG_URL)")
        else:
            print()
            results.append(bench_postgres(load))
            report(results[-1], p99_target=False)
    except (BenchError, ServerFailed) as exc:
        print(f"benchmark error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    failed = sum(result.failed for result in results)
    if failed:
        print(f"\n{failed} requests failed: the figures above are not valid", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
