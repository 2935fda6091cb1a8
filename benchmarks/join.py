"""The public sign-up's two busiest requests, beside the survey benchmark's baseline
measured in the same run (SPEC 10).

Run from the project root (see benchmarks/README.md):

    python benchmarks/join.py [--count 300] [--clients 16] [--rate 50] [--seconds 10]
        [--skip-postgres]

For each backend (SQLite always; PostgreSQL when it answers), on fresh databases:

1. The baseline of benchmarks/surveys.py (a minimal FastAPI app: GET renders one Jinja2
   page, POST reads a form, stores one row, renders a page).
2. Trialdesk with the demo study's definition under another slug, its join link open
   with no minimum time and rate limits far above the load (one address sends it all):
   - `GET /join/{slug}/PHL`: the screening page (criteria, strata, the signed stamp);
   - `POST /join/a/{token}/sign`: the signature (typed name, check box, the quiz answers
     marked again), which records the consent, enrolls the person, opens their baseline
     and queues the copy's email. Each POST signs a different applicant, screened and
     given contact details through HTTP before the clock starts.
   Throughput with `--clients` closed-loop clients (each kind alone, beside the
   baseline's GET and POST), then latency at a fixed arrival rate of `--rate` requests/s
   for `--seconds` (open loop; latency from the scheduled start).
3. The consent PDF's making time (benchmarks/join_pdf.py): the scheduler's sender makes
   it before the copy leaves, outside the sign request.

Exit status: 0 when the measurement ran (whatever the figures); 1 when it could not run;
2 when some requests failed, which makes the figures meaningless.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.config import Settings
from benchmarks import join_pdf
from benchmarks.driver import (
    REQUEST_TIMEOUT_S,
    BenchError,
    Figures,
    Load,
    Recorder,
    figures,
    measure,
    open_loop,
    print_table,
    run_cli,
)
from benchmarks.surveys import DATABASE_URL_ENV, WHO5
from tests import pg
from tests.live import ServerFailed, running_servers

SLUG = "join-bench"
ANSWERS = {"choose_group": "random", "stop_any_time": "yes", "hurt_answers": "call"}
SCREENING = {
    "lang": "en",
    "c-age_18_plus": "yes",
    "c-smi_diagnosis": "yes",
    "c-internet_access": "yes",
    "s-diagnosis": "bipolar",
    "website": "",
}
PREPARERS = 8  # concurrent clients screening the applicants before the clock starts


def _setup(database_url: str, secret_key: str | None) -> None:
    """The demo, and a study of the demo's definition with its join link open to load."""
    from app.db.engine import Database
    from app.demo import demo_definition, load_demo
    from app.studies import service as studies
    from app.studies.definition import StudyDefinition

    db = Database(Settings(database_url=database_url, secret_key=secret_key, scheduler=False))
    try:
        with db.begin() as session:
            load_demo(session)
            demo = demo_definition()
            join = demo["join"] | {
                "min_seconds": 0,
                "per_address_per_hour": 10_000,
                "per_study_per_hour": 100_000,
            }
            definition = StudyDefinition.model_validate(demo | {"slug": SLUG, "join": join})
            study = studies.create_study(session, definition=definition, actor=None)
            studies.add_site(session, study=study, code="PHL", name="Philadelphia", actor=None)
            studies.activate_study(session, study=study, actor=None)
    finally:
        db.dispose()


async def _applicants(url: str, count: int) -> list[tuple[str, str]]:
    """`count` applicants at the signature step (screened, contact details given): the
    path of each one's sign page, and their name."""
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        shown = await client.get(f"/join/{SLUG}/PHL")
        found = re.search(r'name="shown" value="([^"]+)"', shown.text)
        if shown.status_code != 200 or not found:
            raise BenchError(f"screening page: {shown.status_code}")
        stamp = found.group(1)
        numbers = iter(range(count))
        paths: list[tuple[str, str]] = []

        async def prepare() -> None:
            for n in numbers:
                form = SCREENING | {"shown": stamp}
                screened = await client.post(f"/join/{SLUG}/PHL", data=form)
                contact = screened.headers.get("location", "")
                if screened.status_code != 303 or not contact.endswith("/contact"):
                    raise BenchError(f"screening: {screened.status_code} {screened.text[:200]}")
                person = {"name": f"Person {n}", "email": f"person{n}@example.org"}
                given = await client.post(contact, data=person)
                if given.status_code != 303:
                    raise BenchError(f"contact: {given.status_code} {given.text[:200]}")
                paths.append((contact.removesuffix("/contact") + "/sign", person["name"]))

        await asyncio.gather(*(prepare() for _ in range(PREPARERS)))
    return paths


@functools.cache
def _document() -> str:
    """The SHA-256 of the demo's active consent text in English, as the sign form
    carries it (a signature binds to the document shown)."""
    from app.consent.documents import document_sha256
    from app.demo import demo_definition
    from app.studies.definition import StudyDefinition

    active = StudyDefinition.model_validate(demo_definition()).consent.active()
    assert active is not None
    return document_sha256(active, "en")


def _signature(name: str) -> dict[str, str]:
    quiz = {f"q-{code}": value for code, value in ANSWERS.items()}
    return {"step": "sign", "document": _document(), **quiz, "typed_name": name, "agree": "yes"}


@dataclass
class Kind:
    """One kind of request measured: its path and body for the nth request, and the
    status that means it worked."""

    label: str
    path: Any
    form: Any  # None for a GET
    status: int


def _closed(url: str, kind: Kind, args: argparse.Namespace) -> Recorder:
    async def operation(client: httpx.AsyncClient, index: int, recorder: Recorder) -> None:
        started = time.perf_counter()
        try:
            if kind.form is None:
                response = await client.get(kind.path(index))
            else:
                response = await client.post(kind.path(index), data=kind.form(index))
        except httpx.HTTPError as exc:
            recorder.fail(kind.label, f"{type(exc).__name__}: {exc}")
            return
        if response.status_code != kind.status:
            recorder.fail(kind.label, f"HTTP {response.status_code}: {response.text[:200]}")
            return
        recorder.ok(kind.label, (time.perf_counter() - started) * 1000)

    load = Load(count=args.count, clients=args.clients, warmup=args.clients * 2)
    return measure(url, operation, load, headers={})


def _opened(url: str, kind: Kind, args: argparse.Namespace) -> Recorder:
    async def request(client: httpx.AsyncClient, index: int) -> httpx.Response:
        if kind.form is None:
            return await client.get(kind.path(index))
        return await client.post(kind.path(index), data=kind.form(index))

    return open_loop(
        url,
        request,
        rate=args.rate,
        count=args.rate * args.seconds,
        expect=lambda status: status == kind.status,
    )


def _signatures(paths: list[tuple[str, str]]) -> Kind:
    """Each request (warm-up and counted alike) takes the next applicant not yet signed:
    the driver's request numbers are not a range from 0."""
    queue = iter(enumerate(paths))
    taken: dict[int, int] = {}

    def person(index: int) -> int:
        if index not in taken:
            taken[index] = next(queue)[0]
        return taken[index]

    return Kind(
        "Join POST sign",
        path=lambda i: paths[person(i)][0],
        form=lambda i: _signature(paths[person(i)][1]),
        status=303,
    )


@dataclass
class Result:
    rows: list[Figures]
    opened: list[Figures]
    failed: int


def bench(name: str, baseline_url: str, env: dict[str, str], args: argparse.Namespace) -> Result:
    """The baseline, then Trialdesk, each on its fresh database; the figures."""
    recorders: list[tuple[str, Recorder]] = []
    print(f"{name}: the baseline ...", flush=True)
    with running_servers(
        {DATABASE_URL_ENV: baseline_url}, app="benchmarks.surveys:create_baseline_app"
    ) as (url,):
        for kind in (
            Kind("Baseline GET", lambda i: f"/page/{i % 64}", None, 200),
            Kind(
                "Baseline POST (one row)",
                lambda i: f"/page/{i % 64}",
                lambda i: {"action": "save", **WHO5},
                200,
            ),
        ):
            recorders.append((kind.label, _closed(url, kind, args)))
            recorders.append((f"{kind.label} at {args.rate}/s", _opened(url, kind, args)))
    print(f"{name}: Trialdesk ...", flush=True)
    run_cli(["db", "upgrade"], env=env)
    _setup(env["TRIALDESK_DATABASE_URL"], env.get("TRIALDESK_SECRET_KEY"))
    with running_servers(env) as (url,):
        needed = args.count + args.clients * 2 + args.rate * args.seconds + 20
        started = time.perf_counter()
        paths = asyncio.run(_applicants(url, needed))
        print(
            f"  {needed} applicants at the signature step in {time.perf_counter() - started:.0f} s"
        )
        screening = Kind("Join GET screening", lambda i: f"/join/{SLUG}/PHL", None, 200)
        recorders.append(("Join GET screening", _closed(url, screening, args)))
        recorders.append((f"Join GET screening at {args.rate}/s", _opened(url, screening, args)))
        signing = _signatures(paths)
        recorders.append(("Join POST sign", _closed(url, signing, args)))
        recorders.append((f"Join POST sign at {args.rate}/s", _opened(url, signing, args)))
    by_label = dict(recorders)
    rows: list[Figures] = []
    opened: list[Figures] = []
    for label, recorder in recorders:
        row = figures(label, recorder, [*{*recorder.latencies_ms, *recorder.failures}])
        (opened if " at " in label else rows).append(row)
    failed = sum(r.failed for r in by_label.values())
    for label, recorder in recorders:
        for example in recorder.failure_examples:
            print(f"  {label} failure: {example}")
    return Result(rows, opened, failed)


def report(name: str, result: Result, args: argparse.Namespace) -> None:
    print_table(f"{name}: {args.count} requests of each kind, {args.clients} clients", result.rows)
    by = {row.label: row for row in result.rows}
    for mine, theirs in (
        ("Join GET screening", "Baseline GET"),
        ("Join POST sign", "Baseline POST (one row)"),
    ):
        ratio = by[mine].per_second / by[theirs].per_second if by[theirs].per_second else 0.0
        print(f"throughput {mine} / {theirs}: {ratio:.2f}")
    print_table(
        f"{name}: fixed arrival rate {args.rate} requests/s for {args.seconds} s "
        "(latency from the scheduled start)",
        result.opened,
    )


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, str]]:
    names = [pg.create_database(f"trialdesk_bench_{kind}") for kind in ("jbase", "jtd")]
    try:
        yield pg.database_url(names[0]), pg.database_url(names[1])
    finally:
        for name in names:
            pg.drop_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="closed-loop requests of a kind")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=int, default=50, help="open-loop requests per second")
    parser.add_argument("--seconds", type=int, default=10, help="open-loop duration")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    failed = 0
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-join-") as tmp:
            env = {"TRIALDESK_DATABASE_URL": f"sqlite:///{tmp}/td.db"}
            result = bench("SQLite", f"sqlite:///{tmp}/baseline.db", env, args)
            report("SQLite", result, args)
            failed += result.failed
            if args.skip_postgres:
                print("\nPostgreSQL: skipped (--skip-postgres)")
            elif not pg.available():
                print(f"\nPostgreSQL: skipped ({pg.PG_URL} does not answer)")
            else:
                with _postgres() as (base, td):
                    env = {
                        "TRIALDESK_DATABASE_URL": td,
                        "TRIALDESK_SECRET_KEY": secrets.token_hex(32),
                    }
                    result = bench("PostgreSQL", base, env, args)
                    report("PostgreSQL", result, args)
                    failed += result.failed
        print()
        join_pdf.main()
    except (BenchError, ServerFailed) as exc:
        print(f"the benchmark could not run: {exc}", file=sys.stderr)
        return 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
