"""Text messages: one scheduler pass over 10,000 participants, half of them on SMS.

The scheduler runs in this process on a database filled with `--participants`
participants (one open survey each, owed its invitation); half get it by email (SMTP, to
an aiosmtpd server in this process, as `surveys.py` measures), half by text through the
Twilio adapter to a local server speaking Twilio's API (`tests/texting/provider.py`).
Each message's time (from the end of the one before it to the end of its own hand-over:
composing it, sending it, recording it) counts to its channel, giving messages/s per
channel. Baselines on the same servers: a plain httpx client posting the same texts, and
plain smtplib sending as many emails over one connection.
"""

from __future__ import annotations

import argparse
import secrets
import smtplib
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hashlib

import httpx
from pydantic import SecretStr
from sqlalchemy import insert, select, text

from app.config import Settings
from tests import pg
from tests.texting.provider import ACCOUNT, SENDER, TOKEN, FakeTwilio, fake_twilio

STUDY = "peer-support"


class BenchError(RuntimeError):
    """The benchmark could not run."""


@dataclass
class Clock:
    """When each message's hand-over ended, by channel."""

    last: float = field(default_factory=time.perf_counter)
    spent: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def tick(self, channel: str) -> None:
        now = time.perf_counter()
        self.spent[channel] += now - self.last
        self.count[channel] += 1
        self.last = now


class TimedEmails:
    def __init__(self, inner, clock: Clock) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.clock = inner, clock

    def send(self, message: EmailMessage) -> None:
        self.inner.send(message)
        self.clock.tick("email")

    def close(self) -> None:
        self.inner.close()


class TimedTexts:
    def __init__(self, inner, clock: Clock) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.clock = inner, clock

    def send(self, message):  # type: ignore[no-untyped-def]
        ref = self.inner.send(message)
        self.clock.tick("sms")
        return ref

    def close(self) -> None:
        self.inner.close()


def noon_in_new_york(day: datetime) -> datetime:
    """Noon of the day in the demo study's zone: outside quiet hours."""
    zone = ZoneInfo("America/New_York")
    return datetime.combine(day.astimezone(zone).date(), clock(12), zone).astimezone(UTC)


def fill(database_url: str, *, participants: int, secret_key: str | None, now: datetime) -> None:
    """The demo study and `participants` people, each with a baseline owed its
    invitation at `now`: the even ones by text (consent on record, a mobile number),
    the odd ones by email."""
    from alembic import command

    from app.db.engine import Database
    from app.db.schema import alembic_config
    from app.demo import load_demo
    from app.participants.models import Contact, Participant
    from app.studies import service as studies
    from app.studies.models import Site, Study
    from app.studies.pseudonyms import export_order
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
            today = local_date(now, studies.definition_of(study).zone())
        for start in range(0, participants, 5000):
            numbers = range(start, min(start + 5000, participants))
            with db.begin() as session:
                session.execute(
                    insert(Participant),
                    [
                        {
                            "id": n + 1, "study_id": study_id, "site_id": site_id,
                            "code": f"B{n:07d}", "export_order": export_order(key, f"B{n:07d}"),
                            "status": "enrolled", "screening": {},
                            "screened_at": now, "enrolled_at": now, "created_by": admin_id,
                            "channel": "sms" if n % 2 == 0 else "email",
                            "sms_consent_at": now if n % 2 == 0 else None,
                        }
                        for n in numbers
                    ],
                )  # fmt: skip
                session.execute(
                    insert(Contact),
                    [
                        {"participant_id": n + 1, "name": "Pat Doe", "email": f"p{n}@example.org",
                         "phone": f"+1{215 + n // 10_000}555{n % 10_000:04d}"}
                        for n in numbers
                    ],
                )  # fmt: skip
                session.execute(
                    insert(SurveyInstance),
                    [
                        {
                            "study_id": study_id, "site_id": site_id, "participant_id": n + 1,
                            "participant_code": f"B{n:07d}", "timepoint": "baseline",
                            "instruments": ["who5", "phq9"], "anchor_at": now,
                            "opens_on": today, "closes_on": today + timedelta(days=14),
                            "issue": 1,
                            "token_hash": hashlib.sha256(f"bench-{n}".encode()).hexdigest(),
                            "answers": {}, "messages_enqueued": 0, "created_at": now,
                        }
                        for n in numbers
                    ],
                )  # fmt: skip
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    finally:
        db.dispose()


@dataclass
class Result:
    enqueued: int
    enqueue_s: float
    pass_s: float
    per_channel: dict[str, tuple[int, float]]  # channel → (messages, seconds)
    httpx_per_s: float
    smtplib_per_s: float


def bench(database_url: str, args: argparse.Namespace) -> Result:
    from app.db.engine import Database
    from app.scheduler import planner
    from app.scheduler.dispatch import dispatch
    from app.scheduler.mail import SmtpTransport
    from app.studies.models import Study
    from app.texting.provider import TwilioTexts
    from tests.smtp import Inbox, smtp_server

    key = secrets.token_hex(32) if database_url.startswith("postgresql") else None
    now = noon_in_new_york(args.now)
    started = time.perf_counter()
    fill(database_url, participants=args.participants, secret_key=key, now=now)
    print(f"  filled {args.participants} participants in {time.perf_counter() - started:.1f} s")
    inbox = Inbox()
    with smtp_server(inbox) as port, fake_twilio() as fake:
        settings = Settings(
            database_url=database_url, secret_key=key, scheduler=False,
            smtp_host="127.0.0.1", smtp_port=port, sms_provider="twilio",
            twilio_account_sid=ACCOUNT, twilio_auth_token=SecretStr(TOKEN),
            twilio_from=SENDER, twilio_api_url=fake.url,
        )  # fmt: skip
        db = Database(settings)
        try:
            started = time.perf_counter()
            enqueued = 0
            while True:  # the planner's half of a pass, as `runner.run_pass` runs it
                with db.begin() as session:
                    study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
                    rows = planner.owed_surveys(session, study=study, now=now, limit=planner.BATCH)
                    enqueued += planner.enqueue(session, study=study, now=now, rows=rows)
                if len(rows) < planner.BATCH:
                    break
            enqueue_s = time.perf_counter() - started
            timing = Clock()
            started = time.perf_counter()
            sent = dispatch(
                db,
                TimedEmails(SmtpTransport(settings), timing),
                now=now,
                texts=TimedTexts(TwilioTexts(settings), timing),
            )
            pass_s = time.perf_counter() - started
        finally:
            db.dispose()
        if sent.sent != args.participants or sent.failed:
            raise BenchError(f"the pass sent {sent.sent} of {args.participants}: {sent}")
        texts = len(fake.sent)
        httpx_per_s = plain_httpx(fake, count=texts)
        smtplib_per_s = plain_smtplib(port, count=args.participants - texts)
    per_channel = {c: (timing.count[c], timing.spent[c]) for c in ("email", "sms")}
    return Result(enqueued, enqueue_s, pass_s, per_channel, httpx_per_s, smtplib_per_s)


def plain_httpx(fake: FakeTwilio, *, count: int) -> float:
    """The same requests as the adapter's (form, basic auth), one client, per second."""
    url = f"{fake.url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    with httpx.Client(auth=(ACCOUNT, TOKEN), timeout=10) as client:
        started = time.perf_counter()
        for n in range(count):
            form = {
                "From": SENDER,
                "To": f"+1215555{n % 10_000:04d}",
                "Body": "Hello Pat, your survey is ready: http://127.0.0.1:8000/s/"
                + "x" * 43
                + " Reply STOP to end texts.",
                "StatusCallback": "http://127.0.0.1:8000/api/v1/sms/status",
            }
            answer = client.post(url, data=form)
            if answer.status_code != 201:
                raise BenchError(f"the provider answered {answer.status_code}")
        return count / (time.perf_counter() - started)


def plain_smtplib(port: int, *, count: int) -> float:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "x"
    message.set_content("Hello,\n\n" + "Your survey is ready. " * 30 + "\n")
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for _ in range(count):
            smtp.send_message(message)
    return count / (time.perf_counter() - started)


def report(name: str, result: Result, args: argparse.Namespace) -> None:
    title = f"{name}: one scheduler pass, {args.participants} participants, half on SMS"
    print(f"\n{title}\n{'-' * len(title)}")
    print(f"planned: {result.enqueued} messages queued in {result.enqueue_s:.2f} s")
    total = sum(n for n, _ in result.per_channel.values())
    print(f"sent: {total} messages in {result.pass_s:.1f} s ({total / result.pass_s:.0f}/s)")
    baselines = {
        "sms": ("plain httpx", result.httpx_per_s),
        "email": ("plain smtplib", result.smtplib_per_s),
    }
    for channel, (count, seconds) in result.per_channel.items():
        rate = count / seconds if seconds else 0.0
        label, base = baselines[channel]
        print(
            f"{channel:>5}: {count} messages, {rate:.0f}/s; {label} to the same server "
            f"{base:.0f}/s; ratio {rate / base:.2f}"
        )


@contextmanager
def postgres() -> Iterator[str]:
    name = pg.create_database("trialdesk_bench_sms")
    try:
        yield pg.database_url(name)
    finally:
        pg.drop_database(name)


def _instant(value: str) -> datetime:
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument(
        "--now", type=_instant, default=datetime.now(UTC), help="the day of the pass (noon, NY)"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
            print("SQLite ...", flush=True)
            report("SQLite", bench(f"sqlite:///{tmp}/sms.db", args), args)
        if args.skip_postgres:
            print("\nPostgreSQL: skipped (--skip-postgres)")
        elif not pg.available():
            print(f"\nPostgreSQL: skipped ({pg.PG_URL} does not answer)")
        else:
            print("\nPostgreSQL ...", flush=True)
            with postgres() as url:
                report("PostgreSQL", bench(url, args), args)
    except BenchError as exc:
        print(f"the benchmark could not run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
