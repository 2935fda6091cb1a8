"""Survey pages and the scheduler, beside a baseline defined here and measured in the
same run.

Run from the project root (see benchmarks/README.md):

    python benchmarks/surveys.py [--count 1000] [--clients 32] [--rate 50]
        [--instances 100000] [--due 1000] [--now ISO-INSTANT] [--skip-postgres]

For each backend (SQLite always; PostgreSQL when it answers):

1. Pages. The baseline (`create_baseline_app` below: a minimal FastAPI app whose GET
   renders one Jinja2 page and whose POST reads a form, stores one row and renders a
   page) and Trialdesk (`GET /s/{token}`: the first part of a participant's baseline
   survey; `POST /s/{token}` with `action=save` and five answers), one after the other,
   each on a fresh database. One operation = a GET then a POST. Throughput with
   `--clients` closed-loop clients (target: Trialdesk at least half the baseline), then
   latency at a fixed arrival rate of `--rate` requests/s, alternately GET and POST
   (open loop; target: Trialdesk p99 < 30 ms).
2. The scheduler, in this process, over `--instances` survey instances (one per
   participant) of which `--due` are open and owed their invitation: the time to select
   the due work (target ≤ 1 s), then one whole pass (enqueue, write and send every
   email to an aiosmtpd server in this process), in messages/s beside plain smtplib
   sending as many messages over one connection to the same server. The whole part runs
   at one instant, `--now` (default: the clock, read once), and "today" is the study's
   date at that instant in its time zone, as the scheduler reads it: the figures do not
   depend on the date or the hour it runs at.

Exit status: 0 when the measurement ran (whatever the figures); 1 when it could not run;
2 when some requests failed, which makes the figures meaningless.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import secrets
import smtplib
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from jinja2 import DictLoader, Environment, select_autoescape
from sqlalchemy import JSON, DateTime, String, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from app.config import Settings
from app.db.engine import make_engine
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
from tests import pg
from tests.live import ServerFailed, running_servers

STUDY = "peer-support"
RATIO_TARGET = 0.5
P99_TARGET_MS = 30.0
SELECT_TARGET_S = 1.0
PARTICIPANTS = 64  # survey links the page clients share
DATABASE_URL_ENV = "TRIALDESK_BENCH_SURVEYS_DATABASE_URL"
WHO5 = {f"who5_{i}": "3" for i in range(1, 6)}

# --- the baseline ------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Part 1 of 2 — {{ title }}</title></head><body><main><h1>{{ title }}</h1>
<form method="post">{% for item in items %}<fieldset><legend>{{ item }}</legend>
{% for value, label in options %}<input type="radio" id="{{ item }}-{{ value }}" name="{{ item }}"
value="{{ value }}"{% if answers.get(item) == value|string %} checked{% endif %}>
<label for="{{ item }}-{{ value }}">{{ label }}</label>{% endfor %}</fieldset>{% endfor %}
<button name="action" value="save">Save</button></form></main></body></html>"""
_OPTIONS = [(5, "All of the time"), (4, "Most of the time"), (3, "More than half"),
            (2, "Less than half"), (1, "Some of the time"), (0, "At no time")]  # fmt: skip


class _Base(DeclarativeBase):
    pass


class PageAnswers(_Base):
    __tablename__ = "page_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    page: Mapped[str] = mapped_column(String(64))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def create_baseline_app() -> FastAPI:
    """GET renders one Jinja2 page; POST reads the form, stores one row, renders a page.
    The engine is Trialdesk's own (same pool, same SQLite pragmas); on SQLite writers
    queue on a lock in the process, as Trialdesk's do on its write gate."""
    engine = make_engine(Settings(database_url=os.environ[DATABASE_URL_ENV]))
    _Base.metadata.create_all(engine)
    serialize = engine.dialect.name == "sqlite"
    gate: Any = threading.Lock() if serialize else contextlib.nullcontext()
    template = Environment(
        loader=DictLoader({"page.html": _PAGE}), autoescape=select_autoescape(default=True)
    ).get_template("page.html")
    app = FastAPI(title="Trialdesk survey benchmark baseline")
    items = list(WHO5)

    def render(answers: dict[str, str]) -> HTMLResponse:
        html = template.render(title="WHO-5", items=items, options=_OPTIONS, answers=answers)
        return HTMLResponse(html)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/page/{page}")
    def show(page: str) -> HTMLResponse:
        return render({})

    @app.post("/page/{page}")
    async def save(page: str, request: Request) -> HTMLResponse:
        form = await request.form()
        answers = {k: str(v) for k, v in form.items() if k in WHO5}
        return await _store(page, answers)

    async def _store(page: str, answers: dict[str, str]) -> HTMLResponse:
        from starlette.concurrency import run_in_threadpool

        def write() -> None:
            with gate, Session(engine) as session, session.begin():
                session.add(PageAnswers(page=page, answers=answers, created_at=datetime.now(UTC)))

        await run_in_threadpool(write)
        return render(answers)

    return app


# --- the pages -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    path: str
    csrf: str


def _survey_links(url: str, admin_token: str) -> list[Link]:
    """Enroll PARTICIPANTS people; the path and form token of each one's survey."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    links = []
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        for n in range(PARTICIPANTS):
            enrolled = client.post(f"/api/v1/studies/{STUDY}/participants", json=_person(n))
            if enrolled.status_code != 201:
                raise BenchError(f"enroll: {enrolled.status_code} {enrolled.text[:300]}")
            code = enrolled.json()["code"]
            shown = client.get(f"/api/v1/studies/{STUDY}/participants/{code}").json()
            path = "/s/" + str(shown["surveys"][0]["link"]).rsplit("/s/", 1)[1]
            page = client.get(f"{path}?part=1")  # the first part, past the demo's intro page
            found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
            if page.status_code != 200 or not found:
                raise BenchError(f"survey page: {page.status_code}")
            links.append(Link(path, found.group(1)))
    return links


def _person(n: int) -> dict[str, Any]:
    return {
        "site": ("PHL", "PIT")[n % 2],
        "screening": {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True},
        "consent": {"version": "1.0"},
        "strata": {"diagnosis": ("schizophrenia_spectrum", "bipolar", "depressive")[n % 3]},
        "contact": {"name": f"Person {n}", "email": f"person{n}@example.org"},
    }


@dataclass
class PageTargets:
    get_path: Any
    post_path: Any
    form: Any


def _operation(target: PageTargets):  # type: ignore[no-untyped-def]
    async def operation(client: httpx.AsyncClient, index: int, recorder: Recorder) -> None:
        for kind in ("GET", "POST"):
            started = time.perf_counter()
            try:
                if kind == "GET":
                    response = await client.get(target.get_path(index))
                else:
                    response = await client.post(target.post_path(index), data=target.form(index))
            except httpx.HTTPError as exc:
                recorder.fail(kind, f"{type(exc).__name__}: {exc}")
                return
            if response.status_code != 200:
                recorder.fail(kind, f"HTTP {response.status_code}: {response.text[:200]}")
                return
            recorder.ok(kind, (time.perf_counter() - started) * 1000)

    return operation


def _request(target: PageTargets):  # type: ignore[no-untyped-def]
    async def request(client: httpx.AsyncClient, index: int) -> httpx.Response:
        if index % 2 == 0:
            return await client.get(target.get_path(index))
        return await client.post(target.post_path(index), data=target.form(index))

    return request


@dataclass
class PageResult:
    closed: Recorder
    opened: Recorder


def _measure_pages(url: str, target: PageTargets, args: argparse.Namespace) -> PageResult:
    load = Load(count=args.count, clients=args.clients, warmup=args.clients * 2)
    closed = measure(url, _operation(target), load, headers={})
    opened = open_loop(
        url, _request(target), rate=args.rate, count=args.rate * args.seconds,
        expect=lambda status: status == 200,
    )  # fmt: skip
    return PageResult(closed, opened)


def bench_pages(name: str, urls: dict[str, str], workdir: Path, args: argparse.Namespace) -> int:
    """Both apps on fresh databases; print the figures; the number of failed requests."""
    print(f"{name}: the baseline ...", flush=True)
    env = {DATABASE_URL_ENV: urls["baseline"]}
    with running_servers(
        env, app="benchmarks.surveys:create_baseline_app", log=workdir / "baseline.log"
    ) as (url,):
        baseline = _measure_pages(
            url,
            PageTargets(
                get_path=lambda i: f"/page/{i % PARTICIPANTS}",
                post_path=lambda i: f"/page/{i % PARTICIPANTS}",
                form=lambda i: {"action": "save", **WHO5},
            ),
            args,
        )
    print(f"{name}: Trialdesk ...", flush=True)
    env = {**os.environ, **urls["trialdesk_env"]}  # type: ignore[dict-item]
    run_cli(["db", "upgrade"], env=env)
    admin_token = run_cli(["demo"], env=env).strip().splitlines()[-1]
    with running_servers(env, log=workdir / "trialdesk.log") as (url,):
        links = _survey_links(url, admin_token)
        trialdesk = _measure_pages(
            url,
            PageTargets(
                get_path=lambda i: f"{links[i % PARTICIPANTS].path}?part=1",  # past the intro
                post_path=lambda i: links[i % PARTICIPANTS].path,
                form=lambda i: {
                    "csrf_token": links[i % PARTICIPANTS].csrf,
                    "part": "1",
                    "action": "save",
                    **WHO5,
                },
            ),
            args,
        )
    rows = [
        figures("Trialdesk GET /s/{token}", trialdesk.closed, ["GET"]),
        figures("Trialdesk POST (save)", trialdesk.closed, ["POST"]),
        figures("Trialdesk all", trialdesk.closed, ["GET", "POST"]),
        figures("Baseline GET page", baseline.closed, ["GET"]),
        figures("Baseline POST (one row)", baseline.closed, ["POST"]),
        figures("Baseline all", baseline.closed, ["GET", "POST"]),
    ]
    print_table(f"{name}: {args.count} operations (GET + POST), {args.clients} clients", rows)
    ratio = _ratio(rows[2], rows[5])
    verdict = "met" if ratio >= RATIO_TARGET else "NOT met"
    print(f"throughput ratio (Trialdesk / baseline): {ratio:.2f}   target >= 0.5: {verdict}")
    open_rows = [
        figures(f"Trialdesk at {args.rate}/s", trialdesk.opened, ["request"]),
        figures(f"Baseline at {args.rate}/s", baseline.opened, ["request"]),
    ]
    print_table(
        f"{name}: fixed arrival rate {args.rate} requests/s for {args.seconds} s "
        "(GET and POST alternately; latency from the scheduled start)",
        open_rows,
    )
    p99 = open_rows[0].p99
    verdict = "met" if p99 < P99_TARGET_MS else "NOT met"
    print(f"Trialdesk p99 at {args.rate}/s: {p99:.1f} ms   target < 30 ms: {verdict}")
    failed = 0
    for recorder, label in (
        (trialdesk.closed, "Trialdesk"),
        (trialdesk.opened, "Trialdesk (open loop)"),
        (baseline.closed, "baseline"),
        (baseline.opened, "baseline (open loop)"),
    ):
        failed += recorder.failed
        for example in recorder.failure_examples:
            print(f"  {label} failure: {example}")
    return failed


def _ratio(a: Figures, b: Figures) -> float:
    return a.per_second / b.per_second if b.per_second else 0.0


# --- the scheduler ----------------------------------------------------------------------
def _fill(
    database_url: str, *, instances: int, due: int, secret_key: str | None, now: datetime
) -> None:
    """The demo study, and `instances` participants with one survey each: `due` open and
    owed their invitation at `now`, the others opening next month or completed."""
    from alembic import command

    from app.db.engine import Database
    from app.db.schema import alembic_config
    from app.demo import load_demo
    from app.participants.models import Contact, Participant
    from app.studies import service as studies
    from app.studies.models import Site, Study
    from app.studies.pseudonyms import pseudonym
    from app.surveys.models import SurveyInstance
    from app.surveys.scheduling import local_date

    command.upgrade(alembic_config(database_url), "head")
    db = Database(Settings(database_url=database_url, secret_key=secret_key, scheduler=False))
    try:
        with db.begin() as session:
            load_demo(session)
        with db.begin() as session:
            study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
            site = session.scalars(select(Site).where(Site.study_id == study.id)).first()
            admin_id = session.execute(text("SELECT MIN(id) FROM users")).scalar_one()
            assert site is not None
            study_id, site_id = study.id, site.id
            key = studies.blinding_key_of(session, study)
            # The study's date at `now`, as the scheduler reads it (not the UTC date: the
            # two differ for hours every day in a zone west or east of UTC).
            today = local_date(now, studies.definition_of(study).zone())
        chunk = 10_000
        for start in range(0, instances, chunk):
            numbers = range(start, min(start + chunk, instances))
            with db.begin() as session:
                session.execute(
                    insert(Participant),
                    [
                        {
                            "id": n + 1, "study_id": study_id, "site_id": site_id,
                            "code": f"B{n:07d}", "pseudonym": pseudonym(key, f"B{n:07d}"),
                            "status": "enrolled", "screening": {},
                            "screened_at": now, "enrolled_at": now, "created_by": admin_id,
                        }
                        for n in numbers
                    ],
                )  # fmt: skip
                session.execute(
                    insert(Contact),
                    [{"participant_id": n + 1, "name": "P", "email": f"p{n}@example.org"}
                     for n in numbers],
                )  # fmt: skip
                rows = []
                for n in numbers:
                    is_due = n < due
                    opens = today if is_due else today + timedelta(days=30 + n % 300)
                    rows.append(
                        {
                            "study_id": study_id, "site_id": site_id, "participant_id": n + 1,
                            "participant_code": f"B{n:07d}", "timepoint": "baseline",
                            "instruments": ["who5", "phq9"], "anchor_at": now,
                            "opens_on": opens, "closes_on": opens + timedelta(days=14),
                            "issue": 1,
                            "token_hash": hashlib.sha256(f"bench-{n}".encode()).hexdigest(),
                            "answers": {}, "messages_enqueued": 0, "created_at": now,
                            "completed_at": now if (not is_due and n % 3 == 0) else None,
                        }
                    )  # fmt: skip
                session.execute(insert(SurveyInstance), rows)
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    finally:
        db.dispose()


@dataclass
class SchedulerResult:
    select_s: float
    selected: int
    pass_s: float
    sent: int
    raw_per_s: float


def bench_scheduler(database_url: str, args: argparse.Namespace) -> SchedulerResult:
    from app.db.engine import Database
    from app.scheduler import planner
    from app.scheduler.runner import run_pass
    from app.studies.models import Study
    from tests.smtp import Inbox, smtp_server

    key = secrets.token_hex(32) if database_url.startswith("postgresql") else None
    started = time.perf_counter()
    now: datetime = args.now
    _fill(database_url, instances=args.instances, due=args.due, secret_key=key, now=now)
    print(f"  filled {args.instances} instances in {time.perf_counter() - started:.1f} s")
    inbox = Inbox()
    with smtp_server(inbox) as port:
        settings = Settings(
            database_url=database_url, secret_key=key, scheduler=False,
            smtp_host="127.0.0.1", smtp_port=port,
        )  # fmt: skip
        db = Database(settings)
        try:
            with db.session(write=False) as session:
                study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
                session.execute(text("SELECT COUNT(*) FROM survey_instances")).scalar_one()
                started = time.perf_counter()
                selected = planner.owed_surveys(session, study=study, now=now, limit=args.instances)
                select_s = time.perf_counter() - started
            started = time.perf_counter()
            report = run_pass(db, now=now)
            pass_s = time.perf_counter() - started
        finally:
            db.dispose()
        if report.sent != args.due or report.failed:
            raise BenchError(f"the pass sent {report.sent} of {args.due}: {report}")
        raw_per_s = _raw_smtp(port, count=args.due)
    return SchedulerResult(select_s, len(selected), pass_s, report.sent, raw_per_s)


def _raw_smtp(port: int, *, count: int) -> float:
    """Plain smtplib: `count` messages of the same size over one connection, per second."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "x"
    message.set_content("Hello,\n\n" + "Your survey is ready. " * 30 + "\n")
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for _ in range(count):
            smtp.send_message(message)
    return count / (time.perf_counter() - started)


def report_scheduler(name: str, result: SchedulerResult, args: argparse.Namespace) -> None:
    title = f"{name}: one scheduler pass over {args.instances} survey instances"
    print(f"\n{title}\n{'-' * len(title)}")
    verdict = "met" if result.select_s <= SELECT_TARGET_S else "NOT met"
    print(
        f"due work selected: {result.selected} surveys in {result.select_s * 1000:.0f} ms"
        f"   target <= 1 s: {verdict}"
    )
    per_s = result.sent / result.pass_s if result.pass_s else 0.0
    print(
        f"whole pass (select, enqueue, write and send {result.sent} emails by SMTP): "
        f"{result.pass_s:.2f} s = {per_s:.0f} messages/s"
    )
    print(
        f"plain smtplib, one connection, same server: {result.raw_per_s:.0f} messages/s"
        f"   ratio {per_s / result.raw_per_s:.2f}"
    )


# --- the run --------------------------------------------------------------------------------
@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, str, str]]:
    names = [pg.create_database(f"trialdesk_bench_{kind}") for kind in ("base", "td", "sch")]
    try:
        yield tuple(pg.database_url(n) for n in names)  # type: ignore[misc]
    finally:
        for name in names:
            pg.drop_database(name)


def _instant(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="closed-loop operations")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=int, default=50, help="open-loop requests per second")
    parser.add_argument("--seconds", type=int, default=20, help="open-loop duration")
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument(
        "--now",
        type=_instant,
        default=datetime.now(UTC),
        help="the instant the scheduler part runs at (ISO 8601, UTC unless it says)",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    failed = 0
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
            workdir = Path(tmp)
            urls: dict[str, Any] = {
                "baseline": f"sqlite:///{workdir}/baseline.db",
                "trialdesk_env": {"TRIALDESK_DATABASE_URL": f"sqlite:///{workdir}/td.db"},
            }
            failed += bench_pages("SQLite", urls, workdir, args)
            print("\nSQLite: the scheduler ...", flush=True)
            result = bench_scheduler(f"sqlite:///{workdir}/scheduler.db", args)
            report_scheduler("SQLite", result, args)
            if args.skip_postgres:
                print("\nPostgreSQL: skipped (--skip-postgres)")
            elif not pg.available():
                print(f"\nPostgreSQL: skipped ({pg.PG_URL} does not answer)")
            else:
                with _postgres() as (base, td, sch):
                    env = {
                        "TRIALDESK_DATABASE_URL": td,
                        "TRIALDESK_SECRET_KEY": secrets.token_hex(32),
                    }
                    failed += bench_pages(
                        "PostgreSQL", {"baseline": base, "trialdesk_env": env}, workdir, args
                    )
                    print("\nPostgreSQL: the scheduler ...", flush=True)
                    report_scheduler("PostgreSQL", bench_scheduler(sch, args), args)
    except (BenchError, ServerFailed) as exc:
        print(f"the benchmark could not run: {exc}", file=sys.stderr)
        return 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
