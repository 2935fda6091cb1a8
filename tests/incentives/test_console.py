"""The console's Incentives page: linked from the study's navigation for roles that
manage incentives; approve, hold (a reason needed), issue (the card's code shown once),
the vendor file as a download, and gift cards pasted by an admin with rows refused by
line; each form acted on once, however often it is sent; a card's code shown again; a
past vendor file downloaded again. Pages only: SQLite is enough."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditRecord
from tests.console.conftest import ORIGIN, Browser, csrf_of, link_for
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


def _form(browser: Browser, action: str, **fields: str) -> dict[str, str]:
    """The fields of the page's form posting to `action`, as the browser sends them."""
    page = browser.get(f"{BASE}/incentives").text
    found = re.search(
        rf'action="{re.escape(action)}"[^>]*>.*?name="form_id" value="([^"]+)"', page, re.S
    )
    assert found, f"no form for {action} with a form_id"
    return {"csrf_token": csrf_of(page), "form_id": found.group(1), **fields}


def _twice(browser: Browser, action: str, form: dict[str, str]) -> tuple[Any, Any]:
    """The same copy of a form sent twice (a double click, a reload of the answer)."""
    return tuple(browser.client.post(action, data=form, headers=ORIGIN) for _ in range(2))


def test_each_form_is_acted_on_once_and_a_lost_card_or_file_is_found_again(api, db, client) -> None:  # type: ignore[no-untyped-def]
    coordinator = _browser(api, db, client, "coordinator", "PHL")
    admin = _browser(api, db, client, "admin")
    code = api.enroll(api.admin_token, site="PHL")
    api.complete_survey(code)
    cards = _form(admin, f"{BASE}/gift-cards", cards="code,amount,currency\nONCE-25,25,USD\n")
    for loaded in _twice(admin, f"{BASE}/gift-cards", cards):
        assert loaded.status_code == 200 and "1 card loaded" in loaded.text, loaded.text
    entries = api.client.get(
        f"/api/v1/studies/{STUDY}/incentives?participant={code}",
        headers={"Authorization": f"Bearer {api.admin_token}"},
    ).json()["items"]
    completion, bonus = (
        next(e["id"] for e in entries if e["kind"] == k) for k in ("completion", "on_time_bonus")
    )
    approve = f"{BASE}/incentives/{completion}/approve"
    first, second = _twice(coordinator, approve, _form(coordinator, approve))
    assert first.status_code == second.status_code == 303, second.text  # not a 409
    assert first.headers["location"] == second.headers["location"]
    issue = f"{BASE}/incentives/{completion}/issue"
    first, second = _twice(coordinator, issue, _form(coordinator, issue))
    assert first.status_code == second.status_code == 200, second.text
    assert "ONCE-25" in first.text and "ONCE-25" in second.text  # not a 409 hiding it
    assert second.headers["cache-control"] == "no-store"
    card = f"{BASE}/incentives/{completion}/card"
    page = coordinator.get(f"{BASE}/incentives").text
    assert f'action="{card}"' in page and "ONCE-25" not in page
    shown = coordinator.post(card, csrf_from=f"{BASE}/incentives")
    assert shown.status_code == 200 and "ONCE-25" in shown.text and "shown again" in shown.text
    other = _browser(api, db, client, "coordinator", "PIT")
    assert other.post(card, csrf_from=f"{BASE}/incentives").status_code == 404
    with db.session(write=False) as session:
        actions = session.scalars(
            select(AuditRecord.action).where(AuditRecord.entity_id == f"{code}:baseline:completion")
        ).all()
    assert actions.count("incentive.card_shown") == 2  # the second send, the button
    assert actions.count("incentive.issued") == 1

    coordinator.post(f"{BASE}/incentives/{bonus}/approve", csrf_from=f"{BASE}/incentives")
    vendor = f"{BASE}/incentives/vendor-file"
    first, second = _twice(coordinator, vendor, _form(coordinator, vendor))
    assert first.status_code == second.status_code == 200, second.text
    assert first.text == second.text and f",{code},5.00,USD," in first.text
    assert first.headers["content-disposition"] == second.headers["content-disposition"]
    page = coordinator.get(f"{BASE}/incentives").text
    link = re.search(rf'href="({re.escape(vendor)}\?issued_at=[^"]+)"', page)
    assert link, "no past vendor file listed"
    again = coordinator.get(link.group(1).replace("&amp;", "&"))
    assert again.status_code == 200 and again.text == first.text
    assert other.get(link.group(1)).status_code == 404  # none of it at PIT
    assert coordinator.get(f"{vendor}?issued_at=2026-01-01T00:00:00").status_code == 422
