"""Setting up `console.py`'s database and server: the study of `export.py` with its
40 items as four instruments (a grid of 3 timepoints x 4 instruments), filled with
randomized participants; then work for the dashboard and the worklist (open and missed
surveys, safety alerts, failed emails); a few participants with an alert chosen for the
participant page, given a history through the API (a correction, the alert
acknowledged); and the admin signed in to the console as a browser is."""

from __future__ import annotations

import argparse
import random
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.config import Settings
from app.db.engine import Database
from app.demo import DEMO_ADMIN_EMAIL
from app.outbox.models import MessageKind, MessageStatus, OutboxMessage
from app.studies.models import Study
from app.surveys.models import Alert, SurveyInstance
from app.users.sign_in import issue_link
from benchmarks import export
from benchmarks.driver import REQUEST_TIMEOUT_S, BenchError, create_active_study, run_cli
from tests import pg
from tests.live import ServerFailed, running_servers

STUDY = export.STUDY
API = f"/api/v1/studies/{STUDY}"
INSTRUMENTS = 4  # the grid of the participant page: 3 timepoints x 4 instruments
OPEN_EVERY, OPEN_AT = 10, 0  # participants whose month_12 survey is open now
MISSED_EVERY, MISSED_AT = 10, 5  # participants whose month_4 survey was missed
ALERTS, ALERTS_OPEN = 30, 20
FAILED_EMAILS = 10
PAGE_PARTICIPANTS, SEED = 5, 14  # participants of the page, chosen with this seed


@dataclass(frozen=True)
class Work:
    open: int
    missed: int
    alerted: list[str]  # codes of the participants with a safety alert


def add_work(database_url: str, secret_key: str | None) -> Work:
    """After `export.fill` (every survey completed): open surveys, missed ones, safety
    alerts (some acknowledged) and emails that could not be sent (sealed as they are
    written, with the database's keys)."""
    db = Database(Settings(database_url=database_url, secret_key=secret_key))
    engine = db.engine
    try:
        zone = ZoneInfo(export.definition(INSTRUMENTS)["timezone"])
        now = datetime.now(UTC)
        today = now.astimezone(zone).date()
        with Session(engine) as session, session.begin():
            study_id = session.scalars(select(Study.id).where(Study.slug == STUDY)).one()
            admin_id = session.scalars(select(User.id).where(User.email == DEMO_ADMIN_EMAIL)).one()
            found = session.execute(
                select(
                    SurveyInstance.id,
                    SurveyInstance.participant_id,
                    SurveyInstance.participant_code,
                    SurveyInstance.site_id,
                    SurveyInstance.timepoint,
                )
                .where(SurveyInstance.study_id == study_id)
                .order_by(SurveyInstance.id)
            ).all()
            undone: dict[str, Any] = {"completed_at": None, "saved_at": None, "answers": {}}
            opened = [
                s
                for s in found
                if s.timepoint == "month_12" and s.participant_id % OPEN_EVERY == OPEN_AT
            ]
            missed = [
                s
                for s in found
                if s.timepoint == "month_4" and s.participant_id % MISSED_EVERY == MISSED_AT
            ]
            session.execute(
                update(SurveyInstance),
                [
                    {"id": s.id, "opens_on": today - timedelta(days=n % 10),
                     "closes_on": today + timedelta(days=n % 28), **undone}
                    for n, s in enumerate(opened)
                ],
            )  # fmt: skip
            session.execute(update(SurveyInstance), [{"id": s.id, **undone} for s in missed])
            baselines = [s for s in found if s.timepoint == "baseline"]
            baselines = baselines[:: max(1, len(baselines) // ALERTS)]
            session.execute(
                insert(Alert),
                [
                    {
                        "study_id": study_id, "site_id": s.site_id, "instance_id": s.id,
                        "participant_code": s.participant_code, "rule": "battery_high",
                        "text": "The battery total was 150 or more",
                        "raised_at": now - timedelta(days=k),
                        "acknowledged_at": None if k < ALERTS_OPEN else now,
                        "acknowledged_by": None if k < ALERTS_OPEN else admin_id,
                        "note": None if k < ALERTS_OPEN else "Called; safe",
                    }
                    for k, s in enumerate(baselines[:ALERTS])
                ],
            )  # fmt: skip
            session.execute(
                insert(OutboxMessage),
                [
                    {
                        "kind": MessageKind.invitation, "dedupe_key": f"bench-failed:{s.id}",
                        "subject_id": s.id, "study_id": study_id, "site_id": s.site_id,
                        "participant_code": s.participant_code,
                        "status": MessageStatus.failed, "attempts": 5, "next_attempt_at": now,
                        "last_error": "550 mailbox unavailable", "created_at": now,
                    }
                    for s in opened[:FAILED_EMAILS]
                ],
            )  # fmt: skip
        export._settle(engine)
    finally:
        db.dispose()
    alerted = [s.participant_code for s in baselines[:ALERTS]]
    return Work(open=len(opened), missed=len(missed), alerted=alerted)


def setup(env: dict[str, str], *, participants: int, log: Path) -> tuple[str, Work]:
    """The study of `participants`, filled, on the fresh database of `env`: the admin's
    API token, and the work added."""
    database_url = env["TRIALDESK_DATABASE_URL"]
    run_cli(["db", "upgrade"], env=env)
    lines = run_cli(["demo"], env=env).strip().splitlines()
    if not lines:
        raise BenchError("trialdesk demo printed no token")
    admin_token = lines[-1].strip()
    document = export.definition(INSTRUMENTS)
    with running_servers(env, log=log) as (url,):
        create_active_study(url, admin_token, document, export.SITES)
    started = time.perf_counter()
    export.fill(
        database_url,
        participants=participants,
        zone=ZoneInfo(document["timezone"]),
        secret_key=env.get("TRIALDESK_SECRET_KEY"),
        instruments=INSTRUMENTS,
    )
    work = add_work(database_url, env.get("TRIALDESK_SECRET_KEY"))
    print(
        f"  filled {participants} participants ({3 * participants} surveys: {work.open} open, "
        f"{work.missed} missed) in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return admin_token, work


# --- signing in -----------------------------------------------------------------------
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_cookie(url: str, env: dict[str, str]) -> str:
    """Sign the demo admin in to the console as a browser does; the session cookie."""
    settings = Settings(
        database_url=env["TRIALDESK_DATABASE_URL"],
        secret_key=env.get("TRIALDESK_SECRET_KEY"),
        scheduler=False,
    )
    db = Database(settings)
    try:
        with db.begin() as session:
            admin = session.scalars(select(User).where(User.email == DEMO_ADMIN_EMAIL)).one()
            _, token = issue_link(
                session, user=admin, lifetime=timedelta(minutes=15), actor_label="benchmark"
            )
    finally:
        db.dispose()
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        page = client.get(f"/console/sign-in/{token}")
        found = CSRF.search(page.text)
        if page.status_code != 200 or found is None:
            raise BenchError(f"the sign-in page: HTTP {page.status_code} {page.text[:300]}")
        done = client.post(
            f"/console/sign-in/{token}",
            data={"csrf_token": found.group(1)},
            headers={"Origin": url},
        )
        cookie = done.cookies.get("trialdesk_session")
        if done.status_code != 303 or not cookie:
            raise BenchError(f"signing in: HTTP {done.status_code} {done.text[:300]}")
    return cookie


# --- the participant page -------------------------------------------------------------
def page_participants(url: str, token: str, work: Work) -> list[str]:
    """`PAGE_PARTICIPANTS` of those with an alert (so with a completed baseline), chosen
    with a fixed seed; each given a history through the API, as staff would: a baseline
    answer corrected (the original kept, audited) and the alert acknowledged."""
    chosen = random.Random(SEED).sample(work.alerted, min(PAGE_PARTICIPANTS, len(work.alerted)))
    headers = {"Authorization": f"Bearer {token}"}
    item = export.batteries(INSTRUMENTS)[0][1][0]
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        alerts = _ok(client.get(f"{API}/alerts", params={"open": "false", "limit": 100}))
        for code in chosen:
            _ok(
                client.post(
                    f"{API}/participants/{code}/surveys/baseline/corrections",
                    json={"item": item, "value": 4, "reason": "Misheard on the phone call"},
                )
            )
            for alert in alerts["items"]:
                if alert["participant"] == code and alert["acknowledged_at"] is None:
                    _ok(
                        client.post(
                            f"{API}/alerts/{alert['id']}/acknowledge",
                            json={"note": "Called; safe"},
                        )
                    )
    return chosen


def _ok(response: httpx.Response) -> Any:
    if response.status_code not in (200, 201):
        raise BenchError(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code} {response.text[:300]}"
        )
    return response.json()


def on_both_backends(
    bench: Callable[[str, dict[str, str], Path, argparse.Namespace], int],
    args: argparse.Namespace,
    *,
    database: str,
) -> int:
    """Run `bench` on a fresh SQLite file, then (unless `args.skip_postgres` or it does
    not answer) on a fresh PostgreSQL database named `database`; the exit status: 0
    when it ran, 1 when it could not, 2 when some requests failed."""
    failed = 0
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
            workdir = Path(tmp)
            env = {"TRIALDESK_DATABASE_URL": f"sqlite:///{workdir}/{database}.db"}
            failed += bench("SQLite", env, workdir, args)
            if args.skip_postgres:
                print("\nPostgreSQL: skipped (--skip-postgres)")
            elif not pg.available():
                print(f"\nPostgreSQL: skipped ({pg.PG_URL} does not answer)")
            else:
                name = pg.create_database(f"trialdesk_bench_{database}")
                try:
                    env = {
                        "TRIALDESK_DATABASE_URL": pg.database_url(name),
                        "TRIALDESK_SECRET_KEY": secrets.token_urlsafe(30)[:40],
                    }
                    print()
                    failed += bench("PostgreSQL", env, workdir, args)
                finally:
                    pg.drop_database(name)
    except (BenchError, ServerFailed) as exc:
        print(f"the benchmark could not run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 2 if failed else 0
