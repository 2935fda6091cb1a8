"""The first hour's tasks in a real browser, their clicks and page loads counted, so that
they cannot silently grow: each is at most what benchmarks/README.md says ("First hour:
clicks and page loads").

A coordinator of the demo study enrolls a participant, copies the baseline survey's link
and, once the baseline is answered, randomizes (asked first); finds a participant by
email; acknowledges an alert from the dashboard's list of open alerts. A statistician
downloads the Stata file. Each task starts where the user lands after signing in.

Counted: every click the script makes (choosing an option of a list is two: open it,
pick one); typing is not a click. A page load is a `load` event of the tab (a form posted
and its redirect are one). Locators are roles and labels, never the layout.
"""

# ruff: noqa: F811 - `site`, the server fixture of tests/console/test_browser.py, is imported

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.console.test_browser import (  # noqa: F401 - `site` is a fixture
    STUDY_TITLE,
    Site,
    _axe,
    _context,
    _press_sign_in,
    site,
)
from tests.live import PROJECT_ROOT

pytestmark = pytest.mark.slow

FIGURES = PROJECT_ROOT / "benchmarks" / "README.md"
SECTION = "## First hour: clicks and page loads"
ENROLL_AND_RANDOMIZE = "enroll → copy link → randomize"
FIND_BY_EMAIL = "find a participant by email"
ACKNOWLEDGE = "acknowledge an alert"
STATA = "download the Stata file"


def written_figures() -> dict[str, tuple[int, int]]:
    """The table of benchmarks/README.md: task → (clicks, page loads)."""
    text = FIGURES.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    figures = {}
    for line in text[start : end if end >= 0 else len(text)].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].isdigit() and cells[2].isdigit():
            figures[cells[0]] = (int(cells[1]), int(cells[2]))
    return figures


class Counted:
    """A signed-in tab whose clicks and page loads are counted."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.clicks = 0
        self.loads = 0
        page.on("load", self._loaded)

    def _loaded(self, _: Any) -> None:
        self.loads += 1

    def click(self, target: Locator) -> None:
        target.click()
        self.clicks += 1

    def choose(self, select: Locator, value: str) -> None:
        """Open a list and pick an option: two clicks."""
        select.select_option(value)
        self.clicks += 2

    def start(self) -> None:
        self.clicks = self.loads = 0

    def settled(self) -> tuple[int, int]:
        """The counts, once the page in view has loaded."""
        self.page.wait_for_load_state("load")
        return self.clicks, self.loads


@pytest.fixture(scope="module")
def measured() -> Iterator[dict[str, tuple[int, int]]]:
    """What each task took; printed at the end of the module (pytest -s shows it)."""
    found: dict[str, tuple[int, int]] = {}
    yield found
    for task, (clicks, loads) in found.items():
        print(f"| {task} | {clicks} | {loads} |")


def _tab(browser: Browser, site: Site, email: str) -> Counted:
    """The user's tab, signed in with a link, where signing in leads."""
    context = _context(browser)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = context.new_page()
    page.goto(site.link(email))
    _press_sign_in(page, site)
    expect(page.locator("h1")).to_have_text(re.compile(r"^(Your studies|Dashboard)$"))
    return Counted(page)


def _at_most_written(task: str, counts: tuple[int, int], measured: dict[str, Any]) -> None:
    measured[task] = counts
    written = written_figures()
    assert task in written, f"benchmarks/README.md has no figures for {task!r}"
    clicks, loads = written[task]
    assert counts[0] <= clicks and counts[1] <= loads, (
        f"{task}: {counts[0]} clicks and {counts[1]} page loads, "
        f"more than the {clicks} and {loads} of benchmarks/README.md"
    )


def _participant(page: Page) -> str:
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(re.compile(r"^Participant PS-"))
    return heading.inner_text().removeprefix("Participant ")


def test_enroll_copy_the_link_then_randomize(
    site: Site, browser: Browser, measured: dict[str, Any]
) -> None:
    tab = _tab(browser, site, site.user("coordinator", "PHL"))
    page = tab.page
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    tab.start()
    tab.click(page.get_by_role("navigation", name="Study").get_by_role("link", name="Enroll"))
    for question in (
        "Participant is 18 or older",
        "Has a serious mental illness diagnosis",
        "Has regular internet access",
    ):
        tab.click(page.get_by_role("group", name=question).get_by_label("Yes", exact=True))
    tab.click(page.get_by_role("group", name="Diagnosis").get_by_label("Bipolar disorder"))
    page.get_by_label("Participant's name").fill("Robin First-Hour")
    page.get_by_label("Email address").fill(f"robin-{uuid.uuid4().hex[:6]}@example.org")
    tab.click(page.get_by_role("button", name="Enroll"))
    code = _participant(page)
    tab.click(page.get_by_role("button", name="Copy link").first)
    expect(page.get_by_text("Link copied.")).to_be_visible()
    link = page.get_by_label("Personal link (for the participant only)").first.input_value()
    assert page.evaluate("navigator.clipboard.readText()") == link
    enrolled = tab.settled()

    # The participant answers the baseline; the coordinator comes back from the dashboard
    # and finds who is ready to randomize.
    site.answered(code)
    page.goto(site.study)
    tab.start()
    tab.click(page.get_by_role("navigation", name="Study").get_by_role("link", name="Participants"))
    tab.choose(page.get_by_label("Randomization"), "ready")
    tab.click(page.get_by_role("button", name="Show"))
    tab.click(page.get_by_role("link", name=code, exact=True))
    tab.click(page.get_by_role("button", name="Randomize"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Randomize {code}?")
    tab.click(page.get_by_role("button", name="Randomize"))
    expect(page.get_by_role("status").first).to_have_text("The participant is randomized.")
    randomized = tab.settled()
    total = (enrolled[0] + randomized[0], enrolled[1] + randomized[1])
    _at_most_written(ENROLL_AND_RANDOMIZE, total, measured)
    page.context.close()


def test_find_a_participant_by_email(
    site: Site, browser: Browser, measured: dict[str, Any]
) -> None:
    email = f"lee-{uuid.uuid4().hex[:6]}@example.org"
    code = site.api.enroll(site.api.admin_token, contact={"name": "Lee Example", "email": email})
    for _ in range(3):  # others beside, so that the search has something to leave out
        site.enrolled()
    tab = _tab(browser, site, site.user("coordinator", "PHL"))
    page = tab.page
    tab.start()
    tab.click(page.get_by_role("navigation", name="Study").get_by_role("link", name="Participants"))
    page.get_by_label("Find a participant").fill(email.upper())  # as a person may type it
    tab.click(page.get_by_role("button", name="Search"))
    expect(page.get_by_role("status").first).to_contain_text("1 participant found")
    tab.click(page.get_by_role("link", name=code, exact=True))
    assert _participant(page) == code
    _at_most_written(FIND_BY_EMAIL, tab.settled(), measured)
    page.context.close()


def test_acknowledge_an_alert_from_the_dashboard(
    site: Site, browser: Browser, measured: dict[str, Any]
) -> None:
    code = site.enrolled()
    site.answered(code, self_harm=2)  # PHQ-9 item 9 above 0: an open safety alert
    tab = _tab(browser, site, site.user("coordinator", "PHL"))
    page = tab.page
    alerts = page.get_by_role("region", name=re.compile(r"^Open safety alerts"))
    tab.start()
    tab.click(alerts.get_by_role("link", name=code, exact=True))
    assert _participant(page) == code
    page.get_by_label("No adverse event").check()
    page.get_by_label("What was done").fill("Called the same day; safety plan reviewed.")
    tab.click(page.get_by_role("button", name="Acknowledge the alert"))
    expect(page.get_by_role("status").first).to_have_text("The alert is acknowledged.")
    _at_most_written(ACKNOWLEDGE, tab.settled(), measured)
    page.goto(site.study)
    expect(page.get_by_role("link", name=code, exact=True)).to_have_count(0)
    page.context.close()


def test_download_the_stata_file(
    site: Site, browser: Browser, measured: dict[str, Any], tmp_path: Path
) -> None:
    code = site.enrolled()
    site.answered(code)
    tab = _tab(browser, site, site.user("statistician"))
    page = tab.page
    tab.start()
    if page.get_by_role("heading", level=1).inner_text() == "Your studies":
        tab.click(page.get_by_role("link", name=STUDY_TITLE))
    tab.click(page.get_by_role("navigation", name="Study").get_by_role("link", name="Exports"))
    _axe(page, "exports-stata")
    with page.expect_download() as started:
        tab.click(page.get_by_role("link", name="Wide Stata"))
    download = started.value
    assert re.fullmatch(r"peer-support-blinded-wide-[\d-]+\.dta", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert len(pd.read_stata(saved)) >= 1  # a Stata file, with its rows
    _at_most_written(STATA, tab.settled(), measured)
    page.context.close()
