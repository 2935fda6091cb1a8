"""Safety latency: from a participant's answer to the team's email, through the real
server's own scheduler (issue 15's figure; target: under one scheduler interval plus one
send).

Run from the project root (see benchmarks/README.md):

    python benchmarks/safety_latency.py [--runs 5] [--interval SECONDS] [--skip-postgres]

For each backend (SQLite always; PostgreSQL when it answers) the script migrates a fresh
database, loads the demo study, starts an SMTP sink (aiosmtpd, in this process) and
`trialdesk serve` with the in-server scheduler on (its interval: the setting's default
unless `--interval`), then, `--runs` times:

* **alert**: enrolls a participant of PHL, submits the baseline through the survey link
  with PHQ-9 item 9 answered 2, and times from that submission until the safety alert
  email reaches the sink (the PHL coordinator's address);
* **serious event** (when the server has the adverse-event API): opens a serious event
  of that participant (`POST .../participants/{code}/events`) and times until the email
  to the study's safety contact reaches the sink.

It prints, per backend and path, the median and the maximum over the runs, beside the
scheduler interval and the target. Figures only, no assertion. Exit status: 0 when it
ran; 1 when it could not (setup, a server, an email that never came).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.config import Settings
from app.scheduler.mail import SAFETY_EVENT_SUBJECT
from benchmarks.driver import REQUEST_TIMEOUT_S, BenchError, run_cli
from tests import pg
from tests.helpers import BASELINE_ANSWERS, STUDY, enrollment
from tests.live import ServerFailed, running_servers
from tests.smtp import Inbox, smtp_server

DEFAULT_INTERVAL_S = float(Settings.model_fields["scheduler_interval_s"].default)
COORDINATOR = "coordinator@bench.example.org"
SAFETY_CONTACT = "safety@demo.trialdesk.org"  # the demo study's
SERIOUS_EVENT = {
    "AETERM": "Psychiatric hospitalisation",
    "AESEV": "severe",
    "AESER": True,
    "AESHOSP": True,
    "AEREL": "not_related",
    "AEEXPECT": True,
    "AEOUT": "recovering",
    "AEACN": "none",
}


class TimedInbox(Inbox):
    """The tests' SMTP sink, noting when each message arrived (this process's clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, Any]] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer: str = await super().handle_DATA(server, session, envelope)
        with self.changed:
            self.arrivals.append((time.monotonic(), self.messages[-1]))
            self.changed.notify_all()
        return answer

    def wait_for(self, *, to: str, subject_starts: str, count: int, timeout_s: float) -> float:
        """When the `count`-th message to `to` whose subject starts so arrived."""

        def matching() -> list[float]:
            return [
                at
                for at, message in self.arrivals
                if to in str(message["To"]) and str(message["Subject"]).startswith(subject_starts)
            ]

        with self.changed:
            if not self.changed.wait_for(lambda: len(matching()) >= count, timeout=timeout_s):
                got = [f"{m['To']}: {m['Subject']}" for _, m in self.arrivals]
                raise BenchError(
                    f"no email {subject_starts!r} to {to} within {timeout_s:.0f} s (got {got})"
                )
            return matching()[count - 1]


def _post(url: str, path: str, token: str | None, body: Any, expect: int) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=REQUEST_TIMEOUT_S)
    if response.status_code != expect:
        raise BenchError(f"POST {path}: {response.status_code} {response.text[:300]}")
    return response.json()


def _survey_token(url: str, admin: str, code: str) -> str:
    shown = httpx.get(
        f"{url}/api/v1/studies/{STUDY}/participants/{code}",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=REQUEST_TIMEOUT_S,
    )
    if shown.status_code != 200:
        raise BenchError(f"reading {code}: {shown.status_code} {shown.text[:300]}")
    link = next(s["link"] for s in shown.json()["surveys"] if s["timepoint"] == "baseline")
    return str(link).rsplit("/", 1)[1]


def _has_events_api(url: str, coordinator: str, code: str) -> bool:
    probe = httpx.post(
        f"{url}/api/v1/studies/{STUDY}/participants/{code}/events",
        json={},
        headers={"Authorization": f"Bearer {coordinator}"},
        timeout=REQUEST_TIMEOUT_S,
    )
    return probe.status_code not in (404, 405)


def measure_backend(
    name: str, env_base: dict[str, str], *, runs: int, interval_s: float, workdir: Path
) -> dict[str, list[float]]:
    """The seconds each path took, per run, on one backend."""
    inbox = TimedInbox()
    wait_s = 2 * interval_s + 60
    with smtp_server(inbox) as port:
        env = {
            **os.environ,
            **env_base,
            "TRIALDESK_SCHEDULER": "true",
            "TRIALDESK_SCHEDULER_INTERVAL_S": str(interval_s),
            "TRIALDESK_SMTP_HOST": "127.0.0.1",
            "TRIALDESK_SMTP_PORT": str(port),
            "TRIALDESK_LOG_LEVEL": "WARNING",
        }
        run_cli(["db", "upgrade"], env=env)
        lines = run_cli(["demo"], env=env).strip().splitlines()
        if not lines:
            raise BenchError("trialdesk demo printed no token")
        admin = lines[-1].strip()
        print(f"{name}: trialdesk serve, scheduler every {interval_s:g} s ...", flush=True)
        with running_servers(env, log=workdir / f"{name}.log", serve=["--scheduler"]) as (url,):
            user: dict[str, Any] = {"email": COORDINATOR, "name": "Coordinator"}
            user |= {"role": "coordinator", "sites": [{"study": STUDY, "site": "PHL"}]}
            coordinator = _post(url, "/api/v1/users", admin, user, 201)["token"]
            figures: dict[str, list[float]] = {"alert": [], "serious event": []}
            codes: list[str] = []
            for run in range(runs):
                body = enrollment("PHL", name=f"Bench {run}")
                body["contact"]["email"] = f"participant{run}@example.org"
                code = _post(url, f"/api/v1/studies/{STUDY}/participants", coordinator, body, 201)
                codes.append(code["code"])
                token = _survey_token(url, admin, codes[-1])
                answers = {**BASELINE_ANSWERS, "phq9_9": 2}
                started = time.monotonic()
                _post(url, f"/api/v1/surveys/{token}/submit", None, {"answers": answers}, 200)
                arrived = inbox.wait_for(
                    to=COORDINATOR, subject_starts="Safety alert", count=run + 1, timeout_s=wait_s
                )
                figures["alert"].append(arrived - started)
            if not _has_events_api(url, coordinator, codes[0]):
                print(f"{name}: serious event: skipped (no adverse-event API in this server)")
                return figures
            today = datetime.now(UTC).date().isoformat()
            for run, code in enumerate(codes):
                event = {**SERIOUS_EVENT, "AESTDTC": today, "aware_on": today}
                started = time.monotonic()
                _post(url, f"/api/v1/studies/{STUDY}/participants/{code}/events", coordinator,
                      event, 201)  # fmt: skip
                arrived = inbox.wait_for(
                    to=SAFETY_CONTACT,
                    subject_starts=SAFETY_EVENT_SUBJECT,
                    count=run + 1,
                    timeout_s=wait_s,
                )
                figures["serious event"].append(arrived - started)
    return figures


def report(name: str, figures: dict[str, list[float]], *, interval_s: float) -> None:
    print(
        f"\n{name}: scheduler interval {interval_s:g} s; target: under one interval plus one send"
    )
    print(f"  {'path':<48} {'runs':>4} {'median s':>9} {'max s':>8}")
    labels = {
        "alert": "PHQ-9 item 9 answer -> coordinator's alert email",
        "serious event": "serious event opened -> safety contact's email",
    }
    for path, seconds in figures.items():
        if not seconds:
            continue
        print(
            f"  {labels[path]:<48} {len(seconds):>4} {statistics.median(seconds):>9.2f} "
            f"{max(seconds):>8.2f}   (max / interval {max(seconds) / interval_s:.2f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time from a safety answer to its email.")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per path")
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help=f"TRIALDESK_SCHEDULER_INTERVAL_S (default: the setting's, {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.interval < 1:
        parser.error("--runs and --interval must be 1 or more")
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-bench-") as tmp:
            workdir = Path(tmp)
            env = {"TRIALDESK_DATABASE_URL": f"sqlite:///{workdir}/bench.db"}
            figures = measure_backend(
                "SQLite", env, runs=args.runs, interval_s=args.interval, workdir=workdir
            )
            report("SQLite", figures, interval_s=args.interval)
            if args.skip_postgres:
                print("\nPostgreSQL: skipped (--skip-postgres)")
            elif not pg.available():
                print("\nPostgreSQL: skipped (nothing answers; set TRIALDESK_TEST_PG_URL)")
            else:
                database = pg.create_database("trialdesk_bench")
                try:
                    env = {
                        "TRIALDESK_DATABASE_URL": pg.database_url(database),
                        "TRIALDESK_SECRET_KEY": secrets.token_urlsafe(30)[:40],
                    }
                    print()
                    figures = measure_backend(
                        "PostgreSQL", env, runs=args.runs, interval_s=args.interval, workdir=workdir
                    )
                finally:
                    pg.drop_database(database)
                report("PostgreSQL", figures, interval_s=args.interval)
    except (BenchError, ServerFailed) as exc:
        print(f"benchmark error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
