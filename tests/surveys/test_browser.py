"""The survey pages in a real browser: Debian's Chromium, driven by Playwright, on a
360x740 phone and a desktop screen, with JavaScript on and off, against a real server;
axe-core checks every page state at WCAG 2.1 AA.

`make test` installs what these tests need (Chromium, `npm ci` in tests/browser), so
they never skip in CI.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from app.config import Settings
from app.db.engine import Database
from app.demo import load_demo
from tests.helpers import STUDY, bearer, enrollment
from tests.live import running_servers
from tests.surveys.test_api import _shift_window

pytestmark = pytest.mark.slow

AXE = (
    Path(__file__).resolve().parent.parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
)
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@dataclass
class Site:
    url: str
    token: str
    db: Database

    def new_participant(self, **overrides: Any) -> tuple[str, str]:
        """Enroll one; (code, the browser address of its baseline survey)."""
        enrolled = httpx.post(
            f"{self.url}/api/v1/studies/{STUDY}/participants",
            json=enrollment(**overrides),
            headers=bearer(self.token),
            timeout=30,
        )
        assert enrolled.status_code == 201, enrolled.text
        code = enrolled.json()["code"]
        return code, f"{self.url}/s/{self.survey_token(code)}"

    def survey_token(self, code: str) -> str:
        shown = httpx.get(
            f"{self.url}/api/v1/studies/{STUDY}/participants/{code}",
            headers=bearer(self.token),
            timeout=30,
        ).json()
        return str(shown["surveys"][0]["link"]).rsplit("/", 1)[1]

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        done = httpx.post(f"{self.url}{path}", json=body, headers=bearer(self.token), timeout=30)
        assert done.status_code == 200, done.text


def _server(tmp: Path, template: Path, **env: str) -> Iterator[Site]:
    path = tmp / "trialdesk.db"
    shutil.copyfile(template, path)
    settings = Settings(database_url=f"sqlite:///{path}")
    db = Database(settings)
    with db.begin() as session:
        token = load_demo(session).token
    with running_servers({"TRIALDESK_DATABASE_URL": settings.database_url, **env}) as urls:
        yield Site(urls[0], token, db)
    db.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    yield from _server(tmp_path_factory.mktemp("browser"), sqlite_template)


def _page(browser: Browser, *, javascript: bool = True, viewport: dict[str, int] = PHONE) -> Page:
    # The pages forbid inline script (CSP); axe is injected from outside the page.
    context = browser.new_context(
        viewport=viewport, java_script_enabled=javascript, bypass_csp=True
    )
    context.set_default_timeout(30_000)
    return context.new_page()


def _axe(page: Page) -> None:
    """No axe-core violation at WCAG 2.1 AA on the page as it is now (axe runs as a
    script: the tab must allow script, which the pages themselves never need)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target)}))",
        WCAG_21_AA,
    )
    assert found == [], f"{page.url}: {json.dumps(found, indent=1)}"


def _choose(page: Page, item: str, option: int) -> None:
    """Tap the label of an answer (as a person does: the whole row is the target)."""
    page.locator(f"label[for='{item}-{option}']").click()


@pytest.mark.parametrize(
    ("javascript", "viewport"),
    [(True, PHONE), (False, PHONE), (True, DESKTOP)],
    ids=["phone", "phone-no-javascript", "desktop"],
)
def test_a_participant_fills_in_the_baseline_with_an_error_a_save_and_a_return(
    site: Site, browser: Browser, javascript: bool, viewport: dict[str, int]
) -> None:
    code, link = site.new_participant()
    page = _page(browser, javascript=javascript, viewport=viewport)
    check_axe = javascript  # axe runs in the page: only where script runs

    page.goto(link)  # first, the study's intro page (test_browser_layout.py checks it)
    page.get_by_role("link", name="Start the survey").click()
    expect(page).to_have_title("Part 1 of 2 — WHO-5 Well-Being Index")
    assert page.locator("h1").count() == 1
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"]  # nothing wider than the screen
    if check_axe:
        _axe(page)
    for item in range(1, 6):
        _choose(page, f"who5_{item}", 2)
    page.get_by_role("button", name="Continue", exact=True).click()

    # The title is read once the next page has loaded (expect waits; .title() would
    # read whatever page is there at that instant, mid-redirect).
    expect(page).to_have_title("Part 2 of 2 — Patient Health Questionnaire (PHQ-9)")
    for item in (1, 2, 3, 5, 6, 7, 8, 9):  # phq9_4 left out
        _choose(page, f"phq9_{item}", 1)
    page.get_by_role("button", name="Submit your answers").click()

    # The error: beside the question, summarized at the top (focused), answers kept.
    expect(page).to_have_title(re.compile(r"^Error: Part 2 of 2"))
    summary = page.locator(".error-summary")
    assert summary.get_by_role("heading").inner_text() == "There is a problem"
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    beside = page.locator("#phq9_4-error").inner_text()
    assert "Choose an answer" in beside and beside.endswith(summary.locator("a").inner_text())
    assert page.locator("#phq9_1-1").is_checked() and page.locator("#phq9_9-1").is_checked()
    assert not any(page.locator(f"#phq9_4-{n}").is_checked() for n in range(1, 5))
    summary.locator("a").click()  # the link goes to the question's first answer
    assert page.evaluate("location.hash") == "#phq9_4-1"
    if check_axe:
        _axe(page)

    page.get_by_role("button", name="Save and continue later").click()
    expect(page.locator("h1")).to_have_text("Your answers are saved")
    if check_axe:
        _axe(page)

    page.goto(link)  # later, from the email: the part left unfinished, answers restored
    expect(page).to_have_title("Part 2 of 2 — Patient Health Questionnaire (PHQ-9)")
    assert page.locator("#phq9_1-1").is_checked() and page.locator("#phq9_8-1").is_checked()
    _choose(page, "phq9_4", 1)
    page.get_by_role("button", name="Submit your answers").click()

    expect(page.locator("h1")).to_have_text("Thank you — your answers have been sent")
    assert page.locator("a[href='tel:2155550100']").count() == 1  # the support text
    if check_axe:
        _axe(page)
    status = httpx.get(
        f"{site.url}/api/v1/studies/{STUDY}/participants/{code}",
        headers=bearer(site.token),
        timeout=30,
    ).json()["surveys"][0]["status"]
    assert status == "completed"
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_after_a_safety_alert_the_thank_you_page_shows_the_crisis_text(
    site: Site, browser: Browser, javascript: bool
) -> None:
    _code, link = site.new_participant()
    page = _page(browser, javascript=javascript)
    page.goto(f"{link}?part=1")
    for item in range(1, 6):
        _choose(page, f"who5_{item}", 6)
    page.get_by_role("button", name="Continue", exact=True).click()
    for item in range(1, 10):
        _choose(page, f"phq9_{item}", 4)  # nearly every day: item 9 and the total alert
    page.get_by_role("button", name="Submit your answers").click()
    crisis = page.get_by_role("alert")
    assert "If you need help now" in crisis.inner_text()
    assert crisis.locator("a[href='tel:988']").count() == 1
    if javascript:
        _axe(page)
    page.context.close()


def test_every_status_page_is_friendly_and_accessible(site: Site, browser: Browser) -> None:
    later, later_link = site.new_participant()
    closed, closed_link = site.new_participant()
    withdrawn, withdrawn_link = site.new_participant()
    reissued, reissued_link = site.new_participant()
    unmailed, unmailed_link = site.new_participant(contact={"name": "No Email"})
    _shift_window(site.db, later, "baseline", days=5)
    _shift_window(site.db, closed, "baseline", days=-30)
    participants = f"/api/v1/studies/{STUDY}/participants"
    site.post(f"{participants}/{withdrawn}/withdraw", {"reason": "moved away"})
    site.post(f"{participants}/{reissued}/surveys/baseline/reissue")
    site.post(f"{participants}/{unmailed}/surveys/baseline/reissue")
    pages = {
        later_link: (409, "This survey is not open yet"),
        closed_link: (410, "This survey has closed"),
        withdrawn_link: (410, "You do not need to fill in this survey"),
        reissued_link: (410, "This link is no longer used"),
        unmailed_link: (410, "This link is no longer used"),
        f"{site.url}/s/{secrets.token_urlsafe(32)}": (404, "We cannot find this survey"),
    }
    for link, (status, heading) in pages.items():
        page = _page(browser, javascript=False)
        response = page.goto(link)
        assert response is not None and response.status == status
        assert page.locator("h1").inner_text() == heading
        assert page.locator("form").count() == 0
        if link in (reissued_link, unmailed_link):  # "sent" only when it was (issue 14)
            text = page.locator("main").inner_text()
            assert ("We sent you a newer link" in text) == (link == reissued_link), text
            assert ("contact the study team" in text) == (link == unmailed_link), text
        page.context.close()
        checked = _page(browser)
        checked.goto(link)
        _axe(checked)
        checked.context.close()


def test_the_page_for_a_link_guesser_is_accessible(
    tmp_path: Path, sqlite_template: Path, browser: Browser
) -> None:
    for site in _server(tmp_path, sqlite_template, TRIALDESK_UNKNOWN_LINKS_PER_MINUTE="1"):
        unknown = f"{site.url}/s/{secrets.token_urlsafe(32)}"
        assert httpx.get(unknown, timeout=30).status_code == 404
        page = _page(browser)
        response = page.goto(unknown)
        assert response is not None and response.status == 429
        assert page.locator("h1").inner_text() == "Please wait a minute"
        _axe(page)
        page.context.close()
