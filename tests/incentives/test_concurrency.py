"""Coordinators issuing at the same instant, through two server processes on
PostgreSQL: each gift card is given once, the entries left without one get 409
`no-gift-card` and stay approved; two approvals of one entry make one change and one
409."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest

from app.demo import load_demo
from tests.helpers import STUDY, Api, bearer
from tests.live import running_servers
from tests.safety.test_concurrency import _coordinator, _server_env

S = f"/api/v1/studies/{STUDY}"
ENTRIES = 4
CARDS = 3


@pytest.fixture
def backend() -> str:
    """PostgreSQL only: its writers run at once (SQLite takes one writer at a time)."""
    return "postgresql"


def _race(urls: list[str], calls: list[tuple[str, str]]) -> list[httpx.Response]:
    """Each (path, token) posted by a thread of its own, all released at once, the
    threads spread over the servers."""
    start = threading.Barrier(len(calls))
    answers: dict[int, httpx.Response] = {}

    def post(n: int) -> None:
        path, token = calls[n]
        with httpx.Client(base_url=urls[n % len(urls)], timeout=120) as client:
            start.wait(timeout=30)
            answers[n] = client.post(path, headers=bearer(token))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    return [answers[n] for n in range(len(calls))]


@pytest.mark.slow
def test_racing_issues_give_each_gift_card_once_and_refuse_the_rest(settings, db):
    with db.begin() as session:
        admin = load_demo(session).token
    with running_servers(_server_env(settings), count=2) as urls:
        with httpx.Client(base_url=urls[0], timeout=120) as client:
            api = Api(client, admin_token=admin)
            tokens = [_coordinator(client, admin, f"pay-{n}") for n in (1, 2)]
            entries = []
            for _ in range(ENTRIES):
                code = api.enroll(tokens[0], site="PHL")
                api.complete_survey(code)
                listed = client.get(f"{S}/incentives?participant={code}", headers=bearer(admin))
                entries += [e["id"] for e in listed.json()["items"] if e["kind"] == "completion"]
            cards = "".join(f"RACE-{n},25,USD\n" for n in range(CARDS))
            loaded = client.post(
                f"{S}/gift-cards",
                content="code,amount,currency\n" + cards,
                headers={**bearer(admin), "content-type": "text/csv"},
            )
            assert loaded.json()["loaded"] == CARDS, loaded.text
        # every entry approved by two coordinators at once: one approval each
        approvals = _race(
            urls, [(f"{S}/incentives/{e}/approve", token) for e in entries for token in tokens]
        )
        for pair in zip(approvals[::2], approvals[1::2], strict=True):
            assert sorted(a.status_code for a in pair) == [200, 409], [a.text for a in pair]
        # every entry issued twice at once: the cards go to three entries, once each
        issues = _race(
            urls, [(f"{S}/incentives/{e}/issue", token) for e in entries for token in tokens]
        )
        given = [a.json()["gift_card_code"] for a in issues if a.status_code == 200]
        assert sorted(given) == [f"RACE-{n}" for n in range(CARDS)]
        refused = Counter(
            a.json()["type"].rsplit(":", 1)[1] for a in issues if a.status_code != 200
        )
        # a second issue of an entry issued is a state conflict; of one left without a
        # card, no card again
        assert refused == {
            "incentive-state-conflict": CARDS,
            "no-gift-card": 2 * (ENTRIES - CARDS),
        }, [a.text for a in issues]
        with httpx.Client(base_url=urls[1], timeout=60) as client:
            report = client.get(f"{S}/incentives/reconciliation", headers=bearer(admin)).json()
            states = {s["state"]: s["entries"] for s in report["states"]}
    assert states == {"issued": CARDS, "approved": ENTRIES - CARDS, "earned": ENTRIES}  # bonuses
    assert (report["cards_assigned"], report["issued_without_card"]) == (CARDS, 0)
