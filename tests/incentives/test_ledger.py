"""The incentives ledger through the API, on both databases: what a completed survey
earns (once; the on-time bonus by the study's day), the life-cycle and the refused
steps, gift cards loaded and issued, the vendor file, totals and reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.config import Settings
from app.db.base import utcnow
from app.db.engine import Database
from app.demo import load_demo
from app.incentives import earning
from app.incentives.models import GiftCard, IncentiveEntry
from app.main import create_app
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys.models import SurveyInstance
from tests.helpers import STUDY, Api, bearer
from tests.surveys.test_api import _shift_window

S = f"/api/v1/studies/{STUDY}"
NY = ZoneInfo("America/New_York")


@dataclass
class Env:
    api: Api
    db: Database
    coordinator: str  # PHL
    other: str  # a coordinator of PIT

    def get(self, url: str, token: str | None = None) -> Any:
        return self.api.client.get(url, headers=bearer(token or self.coordinator))

    def post(self, url: str, body: Any = None, token: str | None = None) -> Any:
        return self.api.client.post(url, json=body, headers=bearer(token or self.coordinator))

    def entries(self, code: str) -> dict[str, dict[str, Any]]:
        """The participant's entries by kind."""
        listed = self.get(f"{S}/incentives?participant={code}")
        assert listed.status_code == 200, listed.text
        return {e["kind"]: e for e in listed.json()["items"]}

    def earned(self, *, days_open: int = 0) -> tuple[str, dict[str, dict[str, Any]]]:
        """A new PHL participant whose baseline window opened `days_open` days ago and
        who completes it now through the link."""
        code = self.api.enroll(self.coordinator, site="PHL")
        if days_open:
            _shift_window(self.db, code, "baseline", days=-days_open)
        self.api.complete_survey(code)
        return code, self.entries(code)

    def load(self, text: str | bytes, token: str | None = None) -> Any:
        return self.api.client.post(
            f"{S}/gift-cards",
            content=text,
            headers={**bearer(token or self.api.admin_token), "content-type": "text/csv"},
        )


@pytest.fixture(scope="module")
def env(module_settings: Settings) -> Iterator[Env]:
    db = Database(module_settings)
    with db.begin() as session:
        loaded = load_demo(session)
    with TestClient(create_app(module_settings)) as client:
        api = Api(client, admin_token=loaded.token)
        yield Env(api, db, api.user("coordinator", "PHL"), api.user("coordinator", "PIT"))
    db.dispose()


def _trail(env: Env, entity: str) -> list[tuple[str, dict[str, Any]]]:
    records = env.get(f"{S}/audit?limit=1000", env.api.admin_token).json()["items"]
    return [(r["action"], r["changes"]) for r in records if r["entity_id"] == entity]


def test_a_completed_survey_earns_its_amount_and_the_bonus_once(env: Env) -> None:
    code, entries = env.earned()
    assert set(entries) == {"completion", "on_time_bonus"}
    completion = entries["completion"]
    assert (completion["timepoint"], completion["amount"], completion["currency"]) == (
        "baseline",
        "25.00",
        "USD",
    )
    assert (completion["state"], completion["site"]) == ("earned", "PHL")
    assert entries["on_time_bonus"]["amount_cents"] == 500
    # submitting again (the link, then staff entry) earns nothing more
    token = env.api.survey_line(code)
    assert token["status"] == "completed"
    again = env.post(
        f"{S}/participants/{code}/surveys/baseline/submit",
        {"answers": {}, "interviewed_on": datetime.now(NY).date().isoformat()},
    )
    assert again.status_code == 409, again.text
    assert env.entries(code) == entries
    assert [a for a, _ in _trail(env, f"{code}:baseline:completion")] == ["incentive.earned"]
    # earning again for the same survey (a retry, a race) inserts and audits nothing
    with env.db.begin() as session:
        instance = session.scalars(
            select(SurveyInstance).where(SurveyInstance.participant_code == code)
        ).one()
        study = session.get_one(Study, instance.study_id)
        survey = earning.Completed(
            study_id=instance.study_id,
            site_id=instance.site_id,
            participant_id=instance.participant_id,
            participant_code=code,
            instance_id=instance.id,
            timepoint="baseline",
            opens_on=instance.opens_on,
        )
        again_earned = earning.earn(
            session, definition=definition_of(study), survey=survey, actor=None, now=utcnow()
        )
    assert again_earned == []
    assert len(_trail(env, f"{code}:baseline:on_time_bonus")) == 1
    # another site's coordinator sees none of it
    assert env.get(f"{S}/incentives?participant={code}", env.other).json()["items"] == []


def test_the_on_time_bonus_ends_with_the_last_day_counted_in_the_studys_zone(env: Env) -> None:
    _, on_time = env.earned(days_open=7)  # opened 7 study days ago: still on time
    _, late = env.earned(days_open=8)
    assert set(on_time) == {"completion", "on_time_bonus"}
    assert set(late) == {"completion"}


def test_an_entry_goes_from_earned_to_redeemed_and_wrong_steps_are_refused(env: Env) -> None:
    code, entries = env.earned()
    entry = entries["completion"]["id"]
    url = f"{S}/incentives/{entry}"
    assert env.post(f"{url}/hold", {}).status_code == 422  # a reason is needed
    assert env.post(f"{url}/hold", {"reason": "x" * 2001}).status_code == 422
    held = env.post(f"{url}/hold", {"reason": "Two baselines from one address."})
    assert held.status_code == 200 and held.json()["state"] == "held", held.text
    assert env.post(f"{url}/approve", token=env.other).status_code == 404
    approved = env.post(f"{url}/approve")
    assert approved.json()["state"] == "approved" and approved.json()["approved_at"]
    # no $25 card yet: 409, and the entry stays approved
    none_left = env.post(f"{url}/issue")
    assert none_left.status_code == 409, none_left.text
    assert none_left.json()["type"] == "urn:trialdesk:problem:no-gift-card"
    assert env.entries(code)["completion"]["state"] == "approved"
    loaded = env.load("code,amount,currency\nLIFE-25-A,25,USD\n")
    assert loaded.json()["loaded"] == 1, loaded.text
    issued = env.post(f"{url}/issue", {"method": "gift_card"})
    assert issued.status_code == 200, issued.text
    assert issued.json()["gift_card_code"] == "LIFE-25-A"
    assert issued.json()["state"] == "issued" and issued.json()["issue_method"] == "gift_card"
    twice = env.post(f"{url}/approve")
    assert twice.status_code == 409 and twice.json()["state"] == "issued", twice.text
    assert env.post(f"{url}/void", {"reason": "too late for that"}).json()["state"] == "issued"
    assert env.post(f"{url}/redeem").json()["state"] == "redeemed"
    trail = _trail(env, f"{code}:baseline:completion")
    assert [a for a, _ in trail] == [
        "incentive.earned",
        "incentive.held",
        "incentive.approved",
        "incentive.issued",
        "incentive.redeemed",
    ]
    assert "LIFE-25-A" not in str(trail)  # the card's code is never in the trail
    # the bonus: held, then voided after the review
    bonus = f"{S}/incentives/{entries['on_time_bonus']['id']}"
    assert env.post(f"{bonus}/void", {"reason": "no review yet"}).json()["state"] == "earned"
    env.post(f"{bonus}/hold", {"reason": "Same device as another participant."})
    voided = env.post(f"{bonus}/void", {"reason": "Duplicate enrollment confirmed."})
    assert voided.json()["state"] == "void" and voided.json()["reason"].startswith("Duplicate")
    assert env.post(f"{bonus}/approve").status_code == 409
    assert env.post(f"{S}/incentives/2147483647/approve").status_code == 404
    assert env.post(f"{S}/incentives/0/approve").status_code == 422


def test_gift_card_files_report_rejected_rows_by_line_and_store_nothing_when_unreadable(
    env: Env,
) -> None:
    good = env.load("code,amount,currency\nUP-1,10,USD\nUP-2,10.00,USD\nUP-3,ten,USD\n")
    assert good.status_code == 200, good.text
    assert good.json()["loaded"] == 2
    assert [(r["line"], r["problem"][:10]) for r in good.json()["rejected"]] == [(4, "the amount")]
    again = env.load("code,amount,currency\nUP-9,10,USD\nUP-1,10,USD\n")
    assert again.json()["loaded"] == 1
    assert again.json()["rejected"] == [{"line": 3, "problem": "this code was loaded before"}]
    for bad in ("amount,code\n1,x\n", "code,amount,currency\nA\x00,1,USD\n", b"\xff,1"):
        refused = env.load(bad)
        assert refused.status_code == 422, (bad, refused.text)
    assert env.load("code,amount,currency\nUP-4,10,USD\n", env.coordinator).status_code == 403
    big = "code,amount,currency\n" + "X" * (1024 * 1024)
    assert env.load(big).status_code == 413
    summary = env.get(f"{S}/gift-cards/summary").json()["cards"]
    ten = next(c for c in summary if c["amount"] == "10.00")
    assert (ten["unassigned"], ten["assigned"]) == (3, 0)


def test_the_vendor_file_issues_every_approved_entry_once_without_names(env: Env) -> None:
    codes = []
    for _ in range(2):
        code, entries = env.earned(days_open=10)  # late: no bonus
        assert env.post(f"{S}/incentives/{entries['completion']['id']}/approve").status_code == 200
        codes.append(code)
    made = env.post(f"{S}/incentives/vendor-file")
    assert made.status_code == 200, made.text
    lines = made.json()["csv"].splitlines()
    assert lines[0] == "entry_id,participant,amount,currency,timepoint,kind"
    rows = [line.split(",") for line in lines[1:]]
    assert [(r[1], r[2], r[3]) for r in rows if r[1] in codes] == [
        (c, "25.00", "USD") for c in codes
    ]
    assert "Pat" not in made.json()["csv"] and "@" not in made.json()["csv"]
    for code in codes:
        entry = env.entries(code)["completion"]
        assert (entry["state"], entry["issue_method"]) == ("issued", "vendor")
    assert env.post(f"{S}/incentives/vendor-file").json()["entries"] == 0
    listed = env.get(f"{S}/incentives?state=issued&limit=1")
    assert len(listed.json()["items"]) == 1 and listed.json()["next"]


def test_totals_flag_a_participant_paid_the_threshold_in_the_studys_year(env: Env) -> None:
    code, entries = env.earned()
    entry = entries["completion"]["id"]
    _issue(env, entry, "TAX-25")
    # 23:30 on New Year's Eve in New York (already the new year in UTC), and $600 paid
    eve = datetime(2025, 1, 1, 4, 30, tzinfo=UTC)
    with env.db.begin() as session:
        session.execute(
            update(IncentiveEntry)
            .where(IncentiveEntry.id == entry)
            .values(issued_at=eve, amount_cents=60000)
        )
    year = env.get(f"{S}/incentives/totals?year=2024").json()
    assert year["threshold"] == "600.00"
    [mine] = [p for p in year["participants"] if p["participant"] == code]
    assert (mine["paid"], mine["over_threshold"], mine["entries"]) == ("600.00", True, 1)
    later = env.get(f"{S}/incentives/totals?year=2025").json()["participants"]
    assert code not in {p["participant"] for p in later}
    assert env.get(f"{S}/incentives/totals?year=2024", env.other).json()["participants"] == []
    assert env.get(f"{S}/incentives/totals?year=1999").status_code == 422


def _issue(env: Env, entry: int, card: str) -> None:
    env.load(f"code,amount,currency\n{card},25,USD\n")
    assert env.post(f"{S}/incentives/{entry}/approve").status_code == 200
    issued = env.post(f"{S}/incentives/{entry}/issue")
    assert issued.json()["gift_card_code"] == card, issued.text


def test_reconciliation_adds_up_the_states_and_finds_a_card_gone_missing(env: Env) -> None:
    _, entries = env.earned()
    entry = entries["completion"]["id"]
    _issue(env, entry, "REC-25")
    assert env.post(f"{S}/incentives/{entry}/redeem").status_code == 200
    env.load("code,amount,currency\nREC-FREE,5,USD\n")
    shown = env.get(f"{S}/incentives/reconciliation")
    assert shown.status_code == 200, shown.text
    report = shown.json()
    by_state: dict[str, int] = {}
    for row in report["states"]:
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["amount_cents"]
    assert report["earned_cents"] == sum(by_state.values())
    assert report["issued_cents"] == by_state.get("issued", 0) + by_state["redeemed"]
    assert report["redeemed_cents"] == by_state["redeemed"] >= 2500
    assert report["cards_assigned"] >= 1 and report["cards_loaded"] > report["cards_assigned"]
    assert report["issued_without_card"] == 0 and report["cards_on_unissued_entries"] == 0
    # a card taken off its entry behind the ledger's back is found, then put back
    with env.db.begin() as session:
        card = session.scalar(select(GiftCard.id).where(GiftCard.entry_id == entry))
        session.execute(update(GiftCard).where(GiftCard.id == card).values(entry_id=None))
    assert env.get(f"{S}/incentives/reconciliation").json()["issued_without_card"] == 1
    with env.db.begin() as session:
        session.execute(update(GiftCard).where(GiftCard.id == card).values(entry_id=entry))


def test_hostile_inputs_are_refused_with_a_4xx_and_change_nothing(env: Env) -> None:
    code, entries = env.earned()
    entry = entries["completion"]["id"]
    url = f"{S}/incentives/{entry}"
    for body in (
        '{"reason":' * 64 + '"x"' + "}" * 64,  # deeper than any document
        '{"reason": "ok reason", "extra": 1}',
        '{"reason": 12345}',
        '{"reason": "nul \\u0000 inside"}',
        '{"reason": "\\ud800 lone surrogate"}',
        '["reason"]',
        "{",
    ):
        answer = env.api.client.post(
            f"{url}/hold",
            content=body,
            headers={**bearer(env.coordinator), "content-type": "application/json"},
        )
        assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
    for query in ("state=bogus", "participant=%00", f"participant={'P' * 33}", "cursor=!!"):
        assert env.get(f"{S}/incentives?{query}").status_code in (400, 422), query
    assert env.post(f"{S}/incentives/99999999999/approve").status_code == 422
    assert env.post(f"{url}/issue", {"method": "vendor"}).status_code == 422
    assert env.entries(code)["completion"]["state"] == "earned"


def test_an_issued_cards_code_is_shown_again_audited_and_never_kept(env: Env) -> None:
    code, entries = env.earned(days_open=10)
    entry = entries["completion"]["id"]
    url = f"{S}/incentives/{entry}/card"
    assert env.post(url).status_code == 409  # earned: no card yet
    _issue(env, entry, "AGAIN-25")
    key = {**bearer(env.coordinator), "Idempotency-Key": f"card-{entry}"}
    shown = env.api.client.post(url, headers=key)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["gift_card_code"], shown.json()["id"]) == ("AGAIN-25", entry)
    replayed = env.api.client.post(url, headers=key)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["gift_card_code"] is None  # the code is not kept with the key
    assert env.post(url, token=env.other).status_code == 404
    assert env.post(f"{S}/incentives/2147483647/card").status_code == 404
    trail = _trail(env, f"{code}:baseline:completion")
    assert [a for a, _ in trail][-1] == "incentive.card_shown"
    assert "AGAIN-25" not in str(trail)


def test_a_past_vendor_file_is_made_again_the_same_and_listed(env: Env) -> None:
    _, entries = env.earned(days_open=10)
    assert env.post(f"{S}/incentives/{entries['completion']['id']}/approve").status_code == 200
    first = env.post(f"{S}/incentives/vendor-file").json()
    assert first["entries"] >= 1
    at = first["issued_at"]
    again = env.api.client.get(
        f"{S}/incentives/vendor-file",
        params={"issued_at": at},
        headers=bearer(env.coordinator),
    )
    assert again.status_code == 200, again.text
    same = ("csv", "sha256", "filename", "entries", "total_cents", "issued_at")
    assert {k: again.json()[k] for k in same} == {k: first[k] for k in same}
    # in another zone, the same instant
    ny = datetime.fromisoformat(at).astimezone(NY).isoformat()
    shifted = env.api.client.get(
        f"{S}/incentives/vendor-file", params={"issued_at": ny}, headers=bearer(env.coordinator)
    )
    assert shifted.json()["sha256"] == first["sha256"]
    listed = env.get(f"{S}/incentives/vendor-files").json()["files"]
    assert listed[0]["issued_at"] == at and listed[0]["entries"] == first["entries"]
    assert listed[0]["total_cents"] == first["total_cents"]
    trail = _trail(env, f"vendor-file:{datetime.fromisoformat(at).isoformat()}")
    again_made = "incentive.vendor_file_again"
    assert [a for a, _ in trail] == ["incentive.vendor_file", again_made, again_made]
    assert trail[0][1]["sha256"] == trail[1][1]["sha256"] == {"old": None, "new": first["sha256"]}
    for bad in (at[:19], "yesterday", "9" * 5000, "2026-13-01T00:00:00Z"):
        refused = env.api.client.get(
            f"{S}/incentives/vendor-file",
            params={"issued_at": bad},
            headers=bearer(env.coordinator),
        )
        assert refused.status_code == 422, (bad, refused.text)
    for never in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        beyond = env.api.client.get(
            f"{S}/incentives/vendor-file", params={"issued_at": never}, headers=bearer(env.other)
        )
        assert beyond.status_code == 404, (never, beyond.text)
    other = env.api.client.get(
        f"{S}/incentives/vendor-file", params={"issued_at": at}, headers=bearer(env.other)
    )
    assert other.status_code == 404  # none of its entries at PIT
    assert env.get(f"{S}/incentives/vendor-files", env.other).json()["files"] == []
