"""Crash soak: many rounds of SIGKILL-mid-traffic and restart, on fresh databases.

    python benchmarks/crash_soak.py [--rounds 100] [--seed N] [--skip-postgres]

Each round drives 50 concurrent enroll + randomize operations against a real server,
kills it (SIGKILL) after a random number of answers, starts it again on the same
database, and checks: every request answered 2xx is there, nothing is half written,
allocations and audit chain verify, SQLite's integrity check is ok. The test suite runs
10 such rounds per backend (tests/test_crash.py); this runs as many as asked.

Exit status: 0 when every round held; 1 when a problem was found (it is printed).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command

from app.config import Settings
from app.db.engine import Database
from app.db.schema import alembic_config
from app.demo import load_demo
from tests import pg
from tests.crashing import crash_rounds


def soak(settings: Settings, rounds: int, seed: int) -> list[str]:
    command.upgrade(alembic_config(settings.database_url, server_key=settings.server_key), "head")
    db = Database(settings)
    try:
        with db.begin() as session:
            token = load_demo(session).token
        env = {"TRIALDESK_DATABASE_URL": settings.database_url}
        if settings.secret_key is not None:
            env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
        return crash_rounds(db, env, token, rounds=rounds, seed=seed)
    finally:
        db.dispose()


def report(backend: str, started: float, rounds: int, problems: list[str]) -> None:
    elapsed = time.monotonic() - started
    verdict = "every round held" if not problems else f"{len(problems)} problems"
    print(f"{backend}: {rounds} crash rounds in {elapsed:.0f} s: {verdict}")
    for problem in problems:
        print(f"  {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=secrets.randbelow(2**31))
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    print(f"seed {args.seed} (pass --seed to repeat a run)")
    failed = False
    with tempfile.TemporaryDirectory(prefix="trialdesk-soak-") as tmp:
        started = time.monotonic()
        problems = soak(Settings(database_url=f"sqlite:///{tmp}/soak.db"), args.rounds, args.seed)
        report("SQLite", started, args.rounds, problems)
        failed |= bool(problems)
    if not args.skip_postgres and pg.available():
        name = pg.create_database("trialdesk_soak")
        try:
            started = time.monotonic()
            settings = Settings(
                database_url=pg.database_url(name), secret_key=secrets.token_urlsafe(32)
            )
            problems = soak(settings, args.rounds, args.seed)
            report("PostgreSQL", started, args.rounds, problems)
            failed |= bool(problems)
        finally:
            pg.drop_database(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
