"""The public sign-up's pages in a real browser (Debian's Chromium, Playwright) at 390 px
against a real server: every page state, errors included, passes axe-core at WCAG 2.1 AA
and is no wider than the phone (the full flow with email and languages is the end-to-end
test's). The pages carry no script of their own; axe is one, so script is on."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from app.config import Settings
from app.db.engine import Database
from app.demo import demo_definition, load_demo
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from tests.join.test_flow import CONSENT
from tests.live import running_servers
from tests.surveys.test_browser import _axe

pytestmark = pytest.mark.slow

PHONE = {"width": 390, "height": 844}
SLUG = "join-browser"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[str]:
    path = tmp_path_factory.mktemp("join-browser") / "trialdesk.db"
    shutil.copyfile(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}")
    db = Database(settings)
    with db.begin() as session:
        load_demo(session)
        document: dict[str, Any] = demo_definition() | {
            "slug": SLUG,
            "languages": ["en"],  # the demo's Spanish translations do not cover CONSENT
            "translations": {},
            "consent_versions": ["1.0"],
            "consent": CONSENT,
            # No minimum time: a test fills the page in faster than a person.
            "join": {"enabled": True, "min_seconds": 0, "ineligible_text": "Call 988."},
        }
        study = studies.create_study(
            session, definition=StudyDefinition.model_validate(document), actor=None
        )
        studies.add_site(session, study=study, code="PHL", name="Philadelphia", actor=None)
        studies.add_site(session, study=study, code="PIT", name="Pittsburgh", actor=None)
        studies.activate_study(session, study=study, actor=None)
    db.dispose()
    env = {"TRIALDESK_DATABASE_URL": settings.database_url, "TRIALDESK_SCHEDULER": "false"}
    with running_servers(env) as [started]:
        yield started


SHOTS = os.environ.get("TRIALDESK_SCREENSHOTS")  # a folder: keep a screenshot of each page


def _check(page: Page) -> None:
    if SHOTS:
        name = re.sub(r"[^\w]+", "-", page.title())[:60]
        page.screenshot(path=f"{SHOTS}/join-{name}.png", full_page=True)
    _axe(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url}: {width} px wide"


def _choose(page: Page, question: str | re.Pattern[str], answer: str) -> None:
    group = page.get_by_role("group", name=question, exact=True)
    group.locator("label", has_text=re.compile(rf"^{re.escape(answer)}$")).click()


def _screen(page: Page, url: str, *, adult: str = "Yes") -> None:
    page.goto(f"{url}/join/{SLUG}")
    _choose(page, "Are you 18 or older?", adult)
    _choose(page, re.compile("^Has a doctor or other health professional told you"), "Yes")
    _choose(page, re.compile("^Can you use the internet regularly"), "Yes")
    page.get_by_role("group", name="Which of these diagnoses").get_by_label(
        "Bipolar disorder"
    ).check()
    _choose(page, "Where would you like to take part?", "Philadelphia")
    page.get_by_role("button", name="Continue").click()


def test_every_page_of_the_sign_up_is_accessible_on_a_phone(url: str, browser: Browser) -> None:
    context = browser.new_context(viewport=PHONE, bypass_csp=True)
    page = context.new_page()

    def check() -> None:
        _check(page)

    page.goto(f"{url}/join/{SLUG}")
    expect(page.locator("h1")).to_have_text("Can you take part?")
    check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_title(re.compile("^Error: "))
    check()
    _screen(page, url)
    expect(page.locator("h1")).to_have_text("Your contact details")
    check()
    page.get_by_label("Email address").fill("not an email")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".error-summary")).to_be_visible()
    check()
    page.get_by_label("Full name").fill("Ana María López")
    page.get_by_label("Email address").fill("ana@example.org")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("What happens")
    check()
    page.get_by_role("link", name="Continue").click()
    page.get_by_role("link", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Check what you have read")
    check()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".error-summary")).to_be_visible()
    check()
    page.get_by_label("No").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Some answers are not right yet")).to_be_visible()
    check()
    page.get_by_label("Yes").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Check your answers before signing")
    check()
    page.get_by_role("button", name="Continue to sign").click()
    expect(page.locator("h1")).to_have_text("Agree to take part")
    check()
    page.get_by_role("button", name="Sign and agree to take part").click()
    expect(page.locator(".error-summary")).to_be_visible()
    check()
    page.get_by_label("Type your full name").fill("ana maría lópez")
    page.get_by_label("I confirm the declaration above and agree to take part").check()
    page.get_by_role("button", name="Sign and agree to take part").click()
    expect(page.locator("h1")).to_have_text("Thank you for agreeing to take part")
    check()
    page.get_by_role("link", name="Start your first survey").click()
    expect(page).to_have_url(re.compile(r"/s/[\w-]{43}$"))
    # Screened out last: an eligible screening just after it, from the same address,
    # would be held as a re-screening (no baseline link).
    _screen(page, url, adult="No")
    expect(page.locator("h1")).to_have_text("Thank you for your interest")
    check()
    page.goto(f"{url}/join/no-such-study")
    expect(page.locator("h1")).to_have_text("Page not found")
    check()
    context.close()
