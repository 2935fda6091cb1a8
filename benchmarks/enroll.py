"""Enrollment throughput: Trialdesk's enroll + randomize beside a minimal FastAPI baseline.

Run from the project root (see benchmarks/README.md):

    python benchmarks/enroll.py [--count 1000] [--clients 32] [--warmup 64] [--skip-postgres]

For each backend (SQLite always; PostgreSQL when it answers) the script starts two real
uvicorn servers on free loopback ports, one after the other, each on a fresh database:

* Trialdesk (`app.main:create_app`), migrated, with the demo study and a coordinator of
  sites PHL and PIT. One operation is POST enroll, then POST randomize of that participant.
* The baseline (`create_baseline_app` below): one sync endpoint that inserts one row with
  SQLAlchemy in one transaction and returns it, on the same kind of database with the
  same pool and (SQLite) the same pragmas. One operation is two such POSTs, the second
  naming the row the first created. On SQLite its writers queue on a lock in the process,
  as Trialdesk's do on its write gate (TRIALDESK_BENCH_BASELINE_GATE=0 turns that off,
  leaving them to SQLite's busy handler: slower and erratic, so a flattering ratio).

Both are driven the same way: an asyncio driver with N clients (one httpx.AsyncClient and
one keep-alive connection each) pulling from a fixed count of operations, after a short
warm-up that is not counted. The load is a closed loop, so the mean latency is about
N / throughput. It prints throughput and p50/p99 latency of each, and the ratio.

Exit status: 0 when the measurement ran (whether or not the targets are met); 1 when it
could not run (a server failed to start, setup failed, a phase timed out); 2 when it ran
but some requests failed, which makes the figures meaningless.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, Engine, String, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

ROOT = Path(__file__).resolve().parent.parent
STUDY = "peer-support"
SITES = ("PHL", "PIT")
DIAGNOSES = ("schizophrenia_spectrum", "bipolar", "depressive")
ELIGIBLE = {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True}
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

BASELINE_URL_ENV = "TRIALDESK_BENCH_BASELINE_DATABASE_URL"
BASELINE_GATE_ENV = "TRIALDESK_BENCH_BASELINE_GATE"  # "0": SQLite writers wait in busy_timeout
SQLITE_BUSY_TIMEOUT_MS = 30_000  # Trialdesk's default
POOL_SIZE, MAX_OVERFLOW = 10, 20  # Trialdesk's defaults

SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 15.0
SETUP_COMMAND_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 1800.0  # a whole warm-up or measured run; every loop is bounded

P99_TARGET_MS = 50.0
RATIO_TARGET = 0.5


class BenchError(RuntimeError):
    """The benchmark could not run (as opposed to: it ran and missed a target)."""


# --------------------------------------------------------------------------------------
# The baseline: a minimal FastAPI app whose one endpoint inserts one row and returns it.
# uvicorn imports it as `benchmarks.enroll:create_baseline_app --factory` from the root.
# --------------------------------------------------------------------------------------


class _BaselineBase(DeclarativeBase):
    pass


class BaselineRecord(_BaselineBase):
    __tablename__ = "bench_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RecordIn(BaseModel):
    kind: str
    site: str
    data: dict[str, Any] = {}


class RecordOut(BaseModel):
    id: int
    kind: str
    site: str
    data: dict[str, Any]
    created_at: datetime


def _baseline_engine(url: str) -> Engine:
    """An engine set up like Trialdesk's: same pool; on SQLite the same pragmas."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(
            url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_pre_ping=True
        )
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def create_baseline_app() -> FastAPI:
    """The baseline server; its database URL comes from TRIALDESK_BENCH_BASELINE_DATABASE_URL."""
    engine = _baseline_engine(os.environ[BASELINE_URL_ENV])
    _BaselineBase.metadata.create_all(engine)
    # SQLite has one writer at a time. Like Trialdesk's write gate, writers of this process
    # queue on a lock rather than in SQLite's busy handler, whose sleeps (up to 100 ms a
    # try) would make the baseline slow and erratic and the ratio flattering.
    serialize = engine.dialect.name == "sqlite" and os.environ.get(BASELINE_GATE_ENV) != "0"
    write_gate = threading.Lock() if serialize else contextlib.nullcontext()
    app = FastAPI(title="Trialdesk benchmark baseline")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.post("/records", status_code=201, response_model=RecordOut)
    def create_record(body: RecordIn) -> RecordOut:
        with write_gate, Session(engine, expire_on_commit=False) as session, session.begin():
            row = BaselineRecord(
                kind=body.kind, site=body.site, data=body.data, created_at=datetime.now(UTC)
            )
            session.add(row)
            session.flush()
        return RecordOut(
            id=row.id, kind=row.kind, site=row.site, data=row.data, created_at=row.created_at
        )

    return app


# --------------------------------------------------------------------------------------
# Servers: real uvicorn subprocesses on loopback, always stopped by the script itself.
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def uvicorn_server(app_ref: str, *, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run `uvicorn APP --factory` on a free loopback port; yield its base URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", app_ref, "--factory",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we stop the server ourselves
        )
    try:
        _wait_ready(process, base_url, log)
        yield base_url
    except Exception:
        _stop(process)
        print(f"--- end of the server log ({app_ref}) ---\n{_tail(log)}", file=sys.stderr)
        raise
    finally:
        _stop(process)  # also on KeyboardInterrupt; stopping twice is harmless


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(f"the server exited with {process.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{base_url}/healthz").status_code == 200:
                    return
            time.sleep(0.1)
    raise BenchError(f"the server did not answer within {SERVER_START_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)


def run_cli(args: list[str], *, env: dict[str, str]) -> str:
    """Run a `trialdesk` command with this interpreter; return its stdout."""
    command = [sys.executable, "-c", "from app.cli import main; main()", *args]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SETUP_COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"trialdesk {' '.join(args)} timed out") from exc
    if done.returncode != 0:
        raise BenchError(f"trialdesk {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


# --------------------------------------------------------------------------------------
# Load: N concurrent clients pull operations from a fixed count; latency per request.
# --------------------------------------------------------------------------------------


@dataclass
class Recorder:
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    failure_examples: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def ok(self, kind: str, ms: float) -> None:
        self.latencies_ms.setdefault(kind, []).append(ms)

    def fail(self, kind: str, what: str) -> None:
        self.failures[kind] += 1
        if len(self.failure_examples) < 5:
            self.failure_examples.append(f"{kind}: {what}")

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


async def timed_post(
    client: httpx.AsyncClient,
    recorder: Recorder,
    kind: str,
    url: str,
    *,
    expect: int,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """POST, time it, and record a success (the expected status) or a failure."""
    started = time.perf_counter()
    try:
        response = await client.post(url, **kwargs)
    except httpx.HTTPError as exc:
        recorder.fail(kind, f"{type(exc).__name__}: {exc}")
        return None
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != expect:
        recorder.fail(kind, f"HTTP {response.status_code}: {response.text[:300]}")
        return None
    recorder.ok(kind, elapsed_ms)
    return response.json()


Operation = Callable[[httpx.AsyncClient, int, Recorder], Awaitable[None]]


async def drive(clients: list[httpx.AsyncClient], operation: Operation, indexes: range) -> Recorder:
    """Run `operation` for each index, each client taking the next index when it is free."""
    recorder = Recorder()
    pending = iter(indexes)  # shared by the clients

    async def client_loop(client: httpx.AsyncClient) -> None:
        for index in pending:
            await operation(client, index, recorder)

    started = time.perf_counter()
    try:
        async with asyncio.timeout(PHASE_TIMEOUT_S), asyncio.TaskGroup() as group:
            for client in clients:
                group.create_task(client_loop(client))
    except TimeoutError as exc:
        raise BenchError(f"a run did not finish within {PHASE_TIMEOUT_S:.0f} s") from exc
    recorder.wall_s = time.perf_counter() - started
    return recorder


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
            "phone": "555-0100",
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


# --------------------------------------------------------------------------------------
# Figures and report.
# --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Figures:
    label: str
    requests: int
    failed: int
    per_second: float
    p50: float
    p99: float
    max: float


def figures(label: str, recorder: Recorder, kinds: list[str]) -> Figures:
    values = [ms for kind in kinds for ms in recorder.latencies_ms.get(kind, [])]
    failed = sum(recorder.failures[kind] for kind in kinds)
    return Figures(
        label=label,
        requests=len(values) + failed,
        failed=failed,
        per_second=len(values) / recorder.wall_s if recorder.wall_s else 0.0,
        p50=percentile(values, 0.50),
        p99=percentile(values, 0.99),
        max=max(values, default=float("nan")),
    )


@dataclass
class BackendResult:
    name: str
    count: int
    clients: int
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
    title = (
        f"{result.name}: {result.count} operations = {2 * result.count} requests, "
        f"{result.clients} concurrent clients"
    )
    print()
    print(title)
    print("-" * len(title))
    heads = ("requests", "failed", "req/s", "p50 ms", "p99 ms", "max ms")
    print(f"{'':27} " + " ".join(f"{head:>8}" for head in heads))
    for row in rows:
        print(
            f"{row.label:27} {row.requests:8d} {row.failed:8d} {row.per_second:8.1f} "
            f"{row.p50:8.1f} {row.p99:8.1f} {row.max:8.1f}"
        )
    print(
        f"wall time: Trialdesk {result.trialdesk.wall_s:.2f} s, "
        f"baseline {result.baseline.wall_s:.2f} s"
    )
    verdict = "met" if ratio >= RATIO_TARGET else "NOT met"
    print(
        f"ratio (Trialdesk req/s / baseline req/s): {ratio:.2f}   "
        f"target >= {RATIO_TARGET}: {verdict}"
    )
    if p99_target:
        verdict = "met" if trialdesk_all.p99 < P99_TARGET_MS else "NOT met"
        print(
            f"Trialdesk p99: {trialdesk_all.p99:.1f} ms           "
            f"target < {P99_TARGET_MS:.0f} ms: {verdict}"
        )
        print(
            f"  (closed loop: mean latency ~ {result.clients} clients / throughput, so a "
            f"p99 under {P99_TARGET_MS:.0f} ms needs more than "
            f"{result.clients / (P99_TARGET_MS / 1000):.0f} req/s)"
        )
    for recorder, name in ((result.trialdesk, "Trialdesk"), (result.baseline, "baseline")):
        for example in recorder.failure_examples:
            print(f"  {name} failure: {example}")


# --------------------------------------------------------------------------------------
# One backend: a baseline run, then a Trialdesk run, each on its own fresh database.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    count: int
    clients: int
    warmup: int


def measure(base_url: str, operation: Operation, plan: Plan, headers: dict[str, str]) -> Recorder:
    """Warm up, then run the counted operations, with the same clients and connections.

    Each client is its own httpx.AsyncClient with one keep-alive connection: one shared
    pool of many connections costs the driver more CPU than the servers it measures. The
    clients are made (and, by the warm-up, connected) before the clock starts.
    """

    async def run() -> Recorder:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=base_url,
                        headers=headers,
                        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                        timeout=REQUEST_TIMEOUT_S,
                    )
                )
                for _ in range(plan.clients)
            ]
            if plan.warmup:
                warm = await drive(clients, operation, range(1_000_000, 1_000_000 + plan.warmup))
                if warm.failed:
                    raise BenchError(f"the warm-up failed: {warm.failure_examples}")
            return await drive(clients, operation, range(plan.count))

    return asyncio.run(run())


def run_baseline(database_url: str, plan: Plan, workdir: Path) -> Recorder:
    env = {**os.environ, BASELINE_URL_ENV: database_url}
    with uvicorn_server(
        "benchmarks.enroll:create_baseline_app", env=env, log=workdir / "baseline.log"
    ) as base_url:
        return measure(base_url, baseline_operation, plan, headers={})


def run_trialdesk(env: dict[str, str], plan: Plan, workdir: Path) -> Recorder:
    run_cli(["db", "upgrade"], env=env)
    lines = run_cli(["demo"], env=env).strip().splitlines()
    if not lines:
        raise BenchError("trialdesk demo printed no token")
    admin_token = lines[-1].strip()
    with uvicorn_server("app.main:create_app", env=env, log=workdir / "trialdesk.log") as base_url:
        coordinator = {
            "email": f"bench-{secrets.token_hex(4)}@example.org",
            "name": "Benchmark coordinator",
            "role": "coordinator",
            "sites": [{"study": STUDY, "site": site} for site in SITES],
        }
        response = httpx.post(
            f"{base_url}/api/v1/users",
            json=coordinator,
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=REQUEST_TIMEOUT_S,
        )
        if response.status_code != 201:
            raise BenchError(f"creating the coordinator: {response.status_code} {response.text}")
        headers = {"Authorization": f"Bearer {response.json()['token']}"}
        return measure(base_url, trialdesk_operation, plan, headers)


def bench_sqlite(plan: Plan) -> BackendResult:
    with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
        workdir = Path(tmp)
        print(f"SQLite: baseline in {workdir}/baseline.db ...", flush=True)
        baseline = run_baseline(f"sqlite:///{workdir}/baseline.db", plan, workdir)
        print(f"SQLite: Trialdesk in {workdir}/bench.db ...", flush=True)
        env = {**os.environ, "TRIALDESK_DATABASE_URL": f"sqlite:///{workdir}/bench.db"}
        trialdesk = run_trialdesk(env, plan, workdir)
    return BackendResult("SQLite", plan.count, plan.clients, trialdesk, baseline)


def _pg_conninfo(url: str, database: str | None = None) -> str:
    """A libpq URL (psycopg's) for the SQLAlchemy URL, on another database if given."""
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def postgres_url() -> str | None:
    """The server's URL when PostgreSQL answers, else None."""
    url = os.environ.get("TRIALDESK_TEST_PG_URL", DEFAULT_PG_URL)
    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), 2):
            pass
    except OSError:
        return None
    import psycopg

    try:
        with psycopg.connect(_pg_conninfo(url), connect_timeout=3):
            return url
    except psycopg.Error as exc:
        print(f"PostgreSQL at {parsed.host}:{parsed.port} refused: {exc}", file=sys.stderr)
        return None


def bench_postgres(url: str, plan: Plan) -> BackendResult:
    import psycopg

    suffix = secrets.token_hex(4)
    names = {"trialdesk": f"trialdesk_bench_{suffix}", "baseline": f"trialdesk_bench_{suffix}_base"}

    def execute(sql: str) -> None:
        with psycopg.connect(_pg_conninfo(url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    created: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
            workdir = Path(tmp)
            for name in names.values():
                execute(f'CREATE DATABASE "{name}"')
                created.append(name)
            on = {key: make_url(url).set(database=name) for key, name in names.items()}
            print(f"PostgreSQL: baseline in database {names['baseline']} ...", flush=True)
            baseline = run_baseline(
                on["baseline"].render_as_string(hide_password=False), plan, workdir
            )
            print(f"PostgreSQL: Trialdesk in database {names['trialdesk']} ...", flush=True)
            env = {
                **os.environ,
                "TRIALDESK_DATABASE_URL": on["trialdesk"].render_as_string(hide_password=False),
                "TRIALDESK_SECRET_KEY": secrets.token_urlsafe(30)[:40],
            }
            trialdesk = run_trialdesk(env, plan, workdir)
    finally:
        for name in created:
            try:
                execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"could not drop database {name}: {exc}", file=sys.stderr)
    return BackendResult("PostgreSQL", plan.count, plan.clients, trialdesk, baseline)


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
    plan = Plan(count=args.count, clients=args.clients, warmup=warmup)

    results: list[BackendResult] = []
    try:
        results.append(bench_sqlite(plan))
        report(results[-1], p99_target=True)
        if args.skip_postgres:
            print("\nPostgreSQL: skipped (--skip-postgres)")
        elif (url := postgres_url()) is None:
            print("\nPostgreSQL: skipped (nothing answers; set TRIALDESK_TEST_PG_URL)")
        else:
            print()
            results.append(bench_postgres(url, plan))
            report(results[-1], p99_target=False)
    except BenchError as exc:
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
