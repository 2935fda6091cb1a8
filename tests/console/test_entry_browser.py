"""Staff data entry, a correction and leaving the study in a real browser (Debian's
Chromium, Playwright) against a real server: a coordinator enters a phone interview,
corrects one answer, records that the participant stopped the intervention (the
surveys stay scheduled) and later withdrew from follow-up (they are cancelled). axe-core
checks every page state, errors included, at WCAG 2.1 AA."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.test_browser import Site, _axe, _notice, _signed_in
from tests.console.test_browser import site as site  # the module's server (a fixture)
from tests.helpers import BASELINE_ANSWERS

pytestmark = pytest.mark.slow


def _statuses(page: Page) -> list[str]:
    """The status of each timepoint's first instrument in the record's grid, in order
    (the cell's class names the status its words say)."""
    rows = page.locator("table.table-grid tbody tr")
    classes = rows.evaluate_all("rows => rows.map(r => r.querySelector('td').className)")
    return [name.removeprefix("cell-") for name in classes]


def _leave(page: Page, kind: str, category: str, reason: str) -> None:
    page.get_by_role("button", name="Record leaving the study").click()
    expect(page.locator("h1")).to_have_text("Record that the participant leaves the study")
    page.get_by_label(kind, exact=True).check()
    page.get_by_label("Kind of reason").select_option(label=category)
    page.get_by_label("Reason in words").fill(reason)
    page.get_by_role("button", name="Record it").click()


def test_a_coordinator_enters_corrects_and_records_leaving(site: Site, browser: Browser) -> None:
    page = _signed_in(browser, site, site.user("coordinator", "PHL"))
    code = site.enrolled()
    participant = f"{site.study}/participants/{code}"

    # A phone interview: first sent with nothing chosen, then in full.
    page.goto(f"{participant}/surveys/baseline/enter")
    expect(page.locator("h1")).to_have_text("Enter the Baseline survey")
    expect(page.get_by_label("Date of the interview")).to_have_value(re.compile(r"^\d{4}-"))
    _axe(page, "enter")
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.locator(".error-summary")).to_contain_text("Choose an answer for")
    _axe(page, "enter-errors")
    group = page.get_by_role("group", name="Was the assessor blind to the arm?")
    group.get_by_label("No, the assessor knew the arm").check()
    for item, value in BASELINE_ANSWERS.items():
        page.locator(f"input[name='{item}'][value='{value}']").check()
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page).to_have_url(f"{participant}?done=entered")
    assert _notice(page) == "The answers are entered and the survey is complete."
    assert _statuses(page)[0] == "completed"
    _axe(page, "entered")

    # A correction: the question chosen, then the right answer and why.
    page.goto(f"{participant}/surveys/baseline/correct")
    _axe(page, "correct-choose")
    page.get_by_label("Which answer?").select_option("who5_1")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".summary")).to_contain_text("Stored answer")
    _axe(page, "correct")
    page.get_by_role("group", name="The right answer").get_by_label("All of the time").check()
    page.get_by_role("button", name="Correct the answer").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.locator("#reason-error")).to_contain_text("Enter why the answer is corrected")
    _axe(page, "correct-errors")
    page.get_by_label("Reason for the correction").fill("Misheard on the phone")
    page.get_by_role("button", name="Correct the answer").click()
    expect(page).to_have_url(f"{participant}?done=corrected")
    assert _notice(page).startswith("The answer is corrected.")

    # Stopping the intervention: the surveys stay scheduled; then leaving follow-up.
    site.randomized(code)
    page.goto(participant)
    page.get_by_role("button", name="Record leaving the study").click()
    expect(page.locator("h1")).to_have_text("Record that the participant leaves the study")
    _axe(page, "leave")
    page.get_by_role("button", name="Record it").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.locator("#kind-error")).to_have_text(re.compile("Choose what the participant"))
    _axe(page, "leave-errors")
    page.goto(participant)
    _leave(page, "Stopped the intervention (still followed up)", "Too much burden (time, "
           "surveys, travel)", "Finds the group tiring")  # fmt: skip
    expect(page).to_have_url(f"{participant}?done=stopped_intervention")
    assert "surveys continue" in _notice(page)
    later = _statuses(page)[1:]
    assert later and "cancelled" not in later and "scheduled" in later, later
    _axe(page, "stopped")

    _leave(page, "Withdrew from follow-up", "Moved away", "Moved abroad")
    expect(page).to_have_url(f"{participant}?done=withdrawn")
    assert _notice(page) == "The withdrawal is recorded."
    assert set(_statuses(page)[1:]) == {"cancelled"}
    expect(page.locator(".tag-withdrawn")).to_have_text("Withdrawn from follow-up")
    _axe(page, "withdrawn")
    page.context.close()
