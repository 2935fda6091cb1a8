"""The safety path in a real browser (Debian's Chromium, Playwright) against a real
server that runs its scheduler and mails to an SMTP server in this process (issue 15):
a baseline answer of PHQ-9 item 9 above 0 raises an alert; the coordinator answers
"Open an adverse event" and finds the form filled in from the alert, records a serious,
unexpected, possibly related hospitalisation; the event page counts down to the IRB's
deadline; the study's safety contact is emailed without health details; a follow-up, the
report to the IRB and the closure are added; a protocol deviation is recorded; an admin
reads the DSMB report's counts. axe-core checks every new page state, errors included,
at WCAG 2.1 AA on a desktop, and no page is wider than a 360 px phone
(TRIALDESK_SCREENSHOTS=DIR keeps a screenshot of each at both widths)."""

from __future__ import annotations

import re
import time
from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.console.test_browser import WAIT_S, Site, _axe, _look, _notice, _signed_in
from tests.console.test_browser import site as site  # the module's server (a fixture)
from tests.smtp import body
from tests.surveys.test_browser import DESKTOP, PHONE

pytestmark = pytest.mark.slow

CONTACT = "safety@demo.trialdesk.org"  # the demo study's safety contact
SAE_SUBJECT = "Trialdesk: a serious adverse event to review"
RULE = "Thoughts of self-harm (PHQ-9 item 9 above 0)"
ZONE = ZoneInfo("America/New_York")  # the demo study's


def _check(page: Page, name: str) -> None:
    """axe at WCAG 2.1 AA on the desktop page, then nothing wider than a phone's screen
    (a screenshot at each width, if asked for)."""
    _axe(page, name)
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: {width} px wide on a phone"
    _look(page, name)
    page.set_viewport_size(DESKTOP)


def _form(page: Page, kind: str) -> Locator:
    """The event page's form of a version kind (follow_up, closure)."""
    return page.locator("form", has=page.locator(f"input[name=kind][value={kind}]"))


def _choose(scope: Locator | Page, question: str, answer: str) -> None:
    scope.get_by_role("group", name=question, exact=True).get_by_label(answer, exact=True).check()


def _sae_email(site: Site) -> EmailMessage:
    """The serious-event email to the safety contact, waited for (woken by each message
    the sink receives, never a sleep)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        site.inbox.received.clear()  # before looking: a message arriving now wakes us
        found = [m for m in site.inbox.to(CONTACT) if m["Subject"] == SAE_SUBJECT]
        if found:
            return found[0]
        left = deadline - time.monotonic()
        assert left > 0, f"no serious-event email to {CONTACT} in {WAIT_S:.0f} s"
        site.inbox.received.wait(left)


def _count(page: Page, table: str, row: str) -> str:
    """A DSMB table's count in a row, in its last column (Total)."""
    region = page.get_by_role("region", name=table, exact=True)
    line = region.locator("tr", has=page.locator("th", has_text=re.compile(rf"^{row}$")))
    return line.locator("td").last.inner_text()


def test_an_alert_becomes_a_serious_adverse_event_reported_closed_and_counted_for_the_dsmb(
    site: Site, browser: Browser
) -> None:
    today_before = datetime.now(ZONE).date().isoformat()
    code = site.enrolled()
    site.answered(code, self_harm=2)  # PHQ-9 item 9 above 0: a safety alert
    today = datetime.now(ZONE).date().isoformat()
    page = _signed_in(browser, site, site.user("coordinator", "PHL"))
    record = f"{site.study}/participants/{code}"

    # The alert on the record page asks what followed it; nothing chosen is refused.
    page.goto(record)
    expect(page.locator(".alert-open")).to_contain_text(RULE)
    _check(page, "safety-record-alert")
    page.get_by_role("button", name="Acknowledge the alert").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.locator(".error-summary")).to_be_visible()
    _check(page, "safety-acknowledge-error")
    page.get_by_label("Open an adverse event").check()
    page.get_by_role("button", name="Acknowledge the alert").click()

    # The new-event form, filled in from the alert; sent as it is, it asks for the rest.
    expect(page.locator("h1")).to_have_text("Record an adverse event")
    assert "/events/new?alert=" in page.url
    expect(page.locator(".alert-open")).to_contain_text(RULE)
    expect(page.get_by_label("What happened")).to_have_value(RULE)
    onset = page.get_by_label("When it started")
    assert onset.input_value() in (today_before, today)
    aware = page.get_by_label("When the team became aware of it")
    assert aware.input_value() in (today_before, today)
    _check(page, "safety-event-new")
    page.get_by_role("button", name="Save the adverse event").click()
    expect(page).to_have_title(re.compile(r"^Error: New adverse event"))
    summary = page.locator(".error-summary").locator("a").all_inner_texts()
    assert "Choose how severe it is" in summary and len(summary) >= 5, summary
    expect(page.get_by_label("What happened")).to_have_value(RULE)  # kept
    expect(page.locator("input[name=alert]")).to_have_count(1)
    _check(page, "safety-event-new-errors")

    # Serious (a hospital stay), unexpected, possibly related: the IRB's 24 hours start.
    _choose(page, "Severity", "Severe")
    _choose(page, "Is it serious?", "Yes")
    page.get_by_label("Required or prolonged a hospital stay").check()
    _choose(page, "Related to the intervention?", "Possibly related")
    _choose(page, "Expected, as the protocol describes the risks?", "No")
    _choose(page, "Outcome so far", "Recovering")
    _choose(page, "What was done about the intervention", "No action with the intervention")
    _choose(page, "Is it an unanticipated problem?", "No")
    page.get_by_label("Note (optional)").fill("Admitted overnight after a crisis call.")
    page.get_by_role("button", name="Save the adverse event").click()

    expect(page.locator("h1")).to_have_text(re.compile(r"^Adverse event AE-\d+$"))
    number = page.locator("h1").inner_text().removeprefix("Adverse event ")
    event_url = page.url.split("?")[0]
    assert _notice(page).startswith("The adverse event is recorded. It is serious")
    deadlines = page.get_by_role("region", name="This event's reporting deadlines")
    irb = deadlines.locator("tr", has_text="irb_sae")
    expect(irb).to_contain_text("IRB")
    if today_before == today:  # aware today: the 24 hours count from now
        expect(irb.locator(".tag")).to_have_text(re.compile(r"^due in 2[34] hours$"))
    assert irb.locator("time").get_attribute("datetime")
    expect(deadlines.locator("tbody tr")).to_have_count(1)  # no death, not unanticipated
    _check(page, "safety-event")

    # The safety contact is told at once, with a link and no health details.
    mail = _sae_email(site)
    text = body(mail)
    assert event_url in text and number in text
    for secret in (code, RULE, "self-harm", "hospital", "Admitted", "Sam Example"):
        assert secret not in text and secret not in str(mail["Subject"]), secret

    # The deadline on top of the dashboard and of the events list; the acknowledged alert.
    page.goto(site.study)
    due = page.get_by_role("region", name="Adverse events to report, oldest deadline first")
    expect(due.locator("tr", has_text=number)).to_contain_text("due in ")
    _check(page, "safety-dashboard-deadlines")
    page.goto(f"{site.study}/events")
    expect(page.locator("main table").last).to_contain_text(number)
    _check(page, "safety-events")
    page.goto(record)  # the alert acknowledged, the event listed
    expect(page.locator(".alert-open")).to_have_count(0)
    expect(page.get_by_role("region", name="The participant's adverse events")).to_contain_text(
        number
    )
    _check(page, "safety-record-event")
    page.goto(event_url)

    # A follow-up (refused empty first), the report to the IRB, then the closure.
    page.locator("summary", has_text="Add a follow-up").click()
    follow_up = _form(page, "follow_up")
    follow_up.get_by_role("button", name="Save the follow-up").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    _check(page, "safety-follow-up-error")
    follow_up = _form(page, "follow_up")
    follow_up.get_by_label("What is new").fill("Discharged home after two nights.")
    follow_up.get_by_role("button", name="Save the follow-up").click()
    assert _notice(page) == "The follow-up is saved."

    report = page.locator("form.deadline-report")
    expect(report.get_by_label("Reported on")).to_have_value(re.compile(r"^\d{4}-\d\d-\d\d$"))
    report.get_by_label("Reference").fill("IRB-2026-0142")
    report.get_by_role("button", name="Record the report to IRB").click()
    assert _notice(page) == "The report is recorded: that deadline is met."
    irb = page.get_by_role("region", name="This event's reporting deadlines").locator(
        "tr", has_text="irb_sae"
    )
    expect(irb).to_contain_text("Reported on")
    expect(irb).to_contain_text("IRB-2026-0142")
    expect(page.locator("form.deadline-report")).to_have_count(0)

    page.locator("summary", has_text="Close the event").click()
    closure = _form(page, "closure")
    _choose(closure, "Outcome", "Recovered")
    closure.get_by_label("When it ended").fill(today)
    closure.get_by_role("button", name="Close the event").click()
    assert _notice(page) == "The event is closed."
    expect(page.locator("main p .tag").first).to_have_text("Closed")
    kinds = page.locator(".event-versions > li > h3").all_inner_texts()
    assert [k.split(" —")[0] for k in kinds] == [
        "1. First report",
        "2. Follow-up",
        "3. Closure",
    ]
    expect(page.locator("summary", has_text="Add a follow-up")).to_have_count(0)
    _check(page, "safety-event-closed")
    page.goto(site.study)  # the deadline met: no block on top
    expect(page.get_by_role("heading", name=re.compile(r"^Reporting deadlines"))).to_have_count(0)

    # A protocol deviation of the same participant: the form, its list, its page.
    page.goto(record)
    page.get_by_role("button", name="Record a protocol deviation").click()
    expect(page.locator("h1")).to_have_text("Record a protocol deviation")
    page.get_by_role("button", name="Record the deviation").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    _check(page, "safety-deviation-new-errors")
    page.get_by_label("Kind of deviation").select_option(label="Consent error")
    page.get_by_label("What happened").fill("The consent form's second page was not signed.")
    _choose(page, "Is it an important deviation?", "Yes")
    page.get_by_role("button", name="Record the deviation").click()
    expect(page.locator("h1")).to_have_text(re.compile(r"PD-\d+"))
    _check(page, "safety-deviation")
    page.goto(f"{site.study}/deviations")
    expect(page.locator("main table")).to_contain_text("Consent error")
    _check(page, "safety-deviations")
    page.context.close()

    # An admin reads the DSMB report: pooled, then by group; the same totals.
    admin = _signed_in(browser, site, site.user("admin"))
    for part in ("open", "closed"):
        admin.goto(f"{site.study}/reports/dsmb?part={part}")
        expect(admin.locator("h1")).to_have_text(f"DSMB report: {part} part")
        assert _count(admin, "Adverse events", "Events") == "1"
        assert _count(admin, "Adverse events", "Serious events") == "1"
        assert (
            _count(admin, "Adverse events", "Participants with at least one serious event") == "1"
        )
        assert _count(admin, "Adverse events", "Events resulting in death") == "0"
        assert code not in admin.content() and RULE not in admin.content()
        _check(admin, f"safety-dsmb-{part}")
    admin.context.close()
