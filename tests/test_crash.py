"""Crash safety: SIGKILL the server mid-traffic, restart it, and find nothing lost (every
request answered 2xx is there), nothing half written, allocations and audit chain
verified, SQLite's integrity check ok. `benchmarks/crash_soak.py` runs 100 rounds."""

from __future__ import annotations

import pytest

from app.demo import load_demo
from tests.crashing import crash_rounds

ROUNDS = 10


@pytest.mark.slow
def test_a_server_killed_at_random_moments_loses_and_half_writes_nothing(settings, db):
    with db.begin() as session:
        token = load_demo(session).token
    env = {"TRIALDESK_DATABASE_URL": settings.database_url}
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    assert crash_rounds(db, env, token, rounds=ROUNDS, seed=20261130) == []
