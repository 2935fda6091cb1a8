"""The console's Incentives page: linked from the study's navigation for roles that
manage incentives; approve, hold (a reason needed), issue (the card's code shown once),
the vendor file as a download, and gift cards pasted by an admin with rows refused by
line. Pages only: SQLite is enough."""

from __future__ import annotations

import uuid

import pytest

from tests.console.conftest import Browser, link_for
from tests.helpers import STUDY

BASE = f"/console/studies/{STUDY}"


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _browser(api, db, client, role: str, *sites: str) -> Browser:  # type: ignore[no-untyped-def]
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
    api.user(role, *sites, email=email)
    browser = Browser(client, email)
    assert browser.open_link(link_for(db, email)).status_code == 303
    return browser


def test_coordinators_approve_hold_and_issue_from_the_incentives_page(api, db, client) -> None:
    coordinator = _browser(api, db, client, "coordinator", "PHL")
    admin = _browser(api, db, client, "admin")
    statistician = _browser(api, db, client, "statistician")
    code = api.enroll(api.admin_token, site="PHL")
    api.complete_survey(code)
    page = coordinator.get(f"{BASE}/incentives")
    assert page.status_code == 200
    assert f'href="{BASE}/incentives"' in page.text and code in page.text
    assert "25.00 USD" in page.text and "On-time bonus" in page.text
    assert "Load gift cards" not in page.text  # admins load cards
    assert f'href="{BASE}/incentives"' not in statistician.get(BASE).text
    assert statistician.get(f"{BASE}/incentives").status_code == 403

    loaded = admin.post(
        f"{BASE}/gift-cards",
        {"cards": "code,amount,currency\nPAGE-25,25,USD\nPAGE-X,25,EURO\n"},
        csrf_from=f"{BASE}/incentives",
    )
    assert loaded.status_code == 200, loaded.text
    assert "1 card loaded" in loaded.text and "Line 3: the currency" in loaded.text
    refused = admin.post(
        f"{BASE}/gift-cards", {"cards": "nonsense"}, csrf_from=f"{BASE}/incentives"
    )
    assert refused.status_code == 422 and "header" in refused.text

    entries = api.client.get(
        f"/api/v1/studies/{STUDY}/incentives?participant={code}",
        headers={"Authorization": f"Bearer {api.admin_token}"},
    ).json()["items"]
    completion, bonus = (
        next(e["id"] for e in entries if e["kind"] == k) for k in ("completion", "on_time_bonus")
    )
    no_reason = coordinator.post(
        f"{BASE}/incentives/{bonus}/hold", {"reason": " "}, csrf_from=f"{BASE}/incentives"
    )
    assert no_reason.status_code == 422 and "Say why" in no_reason.text
    held = coordinator.post(
        f"{BASE}/incentives/{bonus}/hold",
        {"reason": "Same phone as another."},
        csrf_from=f"{BASE}/incentives",
    )
    assert held.status_code == 303
    approved = coordinator.post(
        f"{BASE}/incentives/{completion}/approve", csrf_from=f"{BASE}/incentives"
    )
    assert approved.status_code == 303
    assert "held for review" in coordinator.get(f"{BASE}/incentives?state=held").text
    issued = coordinator.post(
        f"{BASE}/incentives/{completion}/issue", csrf_from=f"{BASE}/incentives"
    )
    assert issued.status_code == 200 and "PAGE-25" in issued.text
    assert "PAGE-25" not in coordinator.get(f"{BASE}/incentives").text  # shown once
    again = coordinator.post(
        f"{BASE}/incentives/{completion}/issue", csrf_from=f"{BASE}/incentives"
    )
    assert again.status_code == 409

    coordinator.post(f"{BASE}/incentives/{bonus}/approve", csrf_from=f"{BASE}/incentives")
    vendor = coordinator.post(f"{BASE}/incentives/vendor-file", csrf_from=f"{BASE}/incentives")
    assert vendor.status_code == 200 and "attachment" in vendor.headers["content-disposition"]
    assert vendor.text.splitlines()[1].split(",")[1:4] == [code, "5.00", "USD"]
