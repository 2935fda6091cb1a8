"""Driving a server under load and reporting what it did: shared by every benchmark.

Closed loop (`measure`): N clients, each with its own keep-alive connection, pull
operations from a fixed count; each waits for its answer before the next, so the mean
latency is about N / throughput (Little's law). Latency is taken per HTTP request.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.live import PROJECT_ROOT

REQUEST_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 1800.0  # a whole warm-up or measured run; every loop is bounded
SETUP_COMMAND_TIMEOUT_S = 180.0


class BenchError(RuntimeError):
    """The benchmark could not run (as opposed to: it ran and missed a target)."""


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
    answer: dict[str, Any] = response.json()
    return answer


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


@dataclass(frozen=True)
class Load:
    count: int
    clients: int
    warmup: int


def measure(base_url: str, operation: Operation, load: Load, headers: dict[str, str]) -> Recorder:
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
                for _ in range(load.clients)
            ]
            if load.warmup:
                warm = await drive(clients, operation, range(1_000_000, 1_000_000 + load.warmup))
                if warm.failed:
                    raise BenchError(f"the warm-up failed: {warm.failure_examples}")
            return await drive(clients, operation, range(load.count))

    return asyncio.run(run())


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def open_loop(
    base_url: str, request: Request, *, rate: float, count: int, expect: Callable[[int], bool]
) -> Recorder:
    """Send `count` requests at a fixed arrival rate (`rate` per second) whatever the
    answers' pace (an open loop), and record each latency from its scheduled start: a
    server that falls behind shows it as latency, not as a lower rate."""

    async def run() -> Recorder:
        recorder = Recorder()
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_S
        ) as client:
            for index in range(min(count, 20)):  # connect and warm up, not counted
                await request(client, 1_000_000 + index)
            loop = asyncio.get_running_loop()
            started = loop.time()

            async def one(index: int) -> None:
                scheduled = started + index / rate
                await asyncio.sleep(max(0.0, scheduled - loop.time()))
                try:
                    response = await request(client, index)
                except httpx.HTTPError as exc:
                    recorder.fail("request", f"{type(exc).__name__}: {exc}")
                    return
                if not expect(response.status_code):
                    recorder.fail("request", f"HTTP {response.status_code}")
                    return
                recorder.ok("request", (loop.time() - scheduled) * 1000)

            try:
                async with asyncio.timeout(PHASE_TIMEOUT_S), asyncio.TaskGroup() as group:
                    for index in range(count):
                        group.create_task(one(index))
            except TimeoutError as exc:
                raise BenchError(f"a run did not finish within {PHASE_TIMEOUT_S:.0f} s") from exc
            recorder.wall_s = loop.time() - started
        return recorder

    return asyncio.run(run())


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


def print_table(title: str, rows: list[Figures]) -> None:
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


def run_cli(args: list[str], *, env: dict[str, str]) -> str:
    """Run a `trialdesk` command of this checkout with this interpreter; return its stdout."""
    command = [sys.executable, "-c", "from app.cli import main; main()", *args]
    try:
        done = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
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


def create_active_study(
    url: str, admin_token: str, document: dict[str, Any], sites: Sequence[str]
) -> None:
    """Create the study of `document`, add its sites and activate it, through the API as
    the admin."""
    slug = document["slug"]
    headers = {"Authorization": f"Bearer {admin_token}"}
    steps: list[tuple[str, Any]] = [("/api/v1/studies", document)]
    steps += [(f"/api/v1/studies/{slug}/sites", {"code": s, "name": s}) for s in sites]
    steps.append((f"/api/v1/studies/{slug}/activate", None))
    for path, body in steps:
        response = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)
        if response.status_code not in (200, 201):
            raise BenchError(f"POST {path}: {response.status_code} {response.text[:300]}")
