"""Two coordinators save a follow-up of one adverse event at the same instant, each
through a server process of its own: both are kept, numbered 2 and 3, in order."""

from __future__ import annotations

import threading
from datetime import datetime

import httpx
import pytest

from app.demo import load_demo
from tests.helpers import STUDY, bearer, enrollment
from tests.live import running_servers

S = f"/api/v1/studies/{STUDY}"
SAE = {
    "AETERM": "Hospitalised",
    "AESTDTC": "2026-01",
    "AESEV": "severe",
    "AESER": True,
    "AESHOSP": True,
    "AEREL": "possible",
    "AEEXPECT": False,
    "AEOUT": "recovering",
    "AEACN": "none",
}


def _server_env(settings) -> dict[str, str]:
    env = {
        "TRIALDESK_DATABASE_URL": settings.database_url,
        "TRIALDESK_DB_LOCK_TIMEOUT_MS": "120000",
    }
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return env


def _coordinator(client: httpx.Client, admin: str, name: str) -> str:
    body = {
        "email": f"{name}@example.org",
        "name": name,
        "role": "coordinator",
        "sites": [{"study": STUDY, "site": "PHL"}],
    }
    made = client.post("/api/v1/users", json=body, headers=bearer(admin))
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


@pytest.mark.slow
def test_two_follow_ups_saved_at_once_are_both_kept_in_order(settings, db):
    with db.begin() as session:
        admin = load_demo(session).token
    with running_servers(_server_env(settings), count=2) as urls:
        with httpx.Client(base_url=urls[0], timeout=120) as client:
            tokens = [_coordinator(client, admin, f"coord-{n}") for n in (1, 2)]
            enrolled = client.post(
                f"{S}/participants", json=enrollment("PHL"), headers=bearer(tokens[0])
            )
            assert enrolled.status_code == 201, enrolled.text
            opened = client.post(
                f"{S}/participants/{enrolled.json()['code']}/events",
                json=SAE,
                headers=bearer(tokens[0]),
            )
            assert opened.status_code == 201, opened.text
        event = opened.json()["id"]
        start = threading.Barrier(2)
        answers: dict[int, httpx.Response] = {}

        def follow_up(n: int) -> None:
            with httpx.Client(base_url=urls[n], timeout=120) as client:
                body = {"AEOUT": "recovering", "note": f"news from coordinator {n}"}
                start.wait(timeout=30)
                answers[n] = client.post(
                    f"{S}/events/{event}/versions", json=body, headers=bearer(tokens[n])
                )

        threads = [threading.Thread(target=follow_up, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=150)
        assert [answers[n].status_code for n in (0, 1)] == [201, 201], [
            answers[n].text for n in answers
        ]
        assert sorted(answers[n].json()["version"] for n in (0, 1)) == [2, 3]
        with httpx.Client(base_url=urls[0], timeout=60) as client:
            shown = client.get(f"{S}/events/{event}", headers=bearer(tokens[0])).json()
    versions = shown["versions"]
    assert [v["number"] for v in versions] == [1, 2, 3]
    assert {v["fields"]["note"] for v in versions[1:]} == {
        "news from coordinator 0",
        "news from coordinator 1",
    }
    assert {v["by"] for v in versions[1:]} == {"coord-1@example.org", "coord-2@example.org"}
    times = [datetime.fromisoformat(v["at"]) for v in versions]
    assert times == sorted(times)  # numbered in the order they were recorded
    assert shown["version"] == 3
