"""The staff console in a real browser: Debian's Chromium, driven by Playwright, against a
real server that runs its scheduler and mails through an SMTP server in this process.

A coordinator signs in with an emailed link, enrolls, copies a survey link, randomizes
and acknowledges an alert; a participant answers in another browser; a statistician
downloads the data package. Each role sees only its pages and (blinded) groups. axe-core
checks every page state at WCAG 2.1 AA on a desktop and a tablet screen, and everything
works with JavaScript off.

`make test` installs what these tests need (Chromium, `npm ci` in tests/browser), so
they never skip in CI. Set TRIALDESK_SCREENSHOTS=DIR to keep a screenshot of each page.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from frictionless import Package, validate
from playwright.sync_api import Browser, BrowserContext, Page, expect

from app.auth import service as auth
from app.config import Settings
from app.db.engine import Database
from app.demo import load_demo
from app.users import sign_in
from tests import live
from tests.helpers import BASELINE_ANSWERS, STUDY, Api
from tests.live import PROJECT_ROOT, running_servers
from tests.smtp import Inbox, body, smtp_server
from tests.surveys.test_browser import DESKTOP, PHONE
from tests.surveys.test_browser import _axe as axe_finds_nothing

pytestmark = pytest.mark.slow

TABLET = {"width": 768, "height": 1024}
SUBJECT = "Your Trialdesk sign-in link"
STUDY_TITLE = "Online peer support for people with serious mental illness"
# The demo study's arms: codes and labels, which a blinded role must never be shown.
ARM_WORDS = (
    "listserv",
    "bulletin_board",
    "Email list-serv",
    "Bulletin board community",
    "Control (usual care)",
)
ARM_LABELS = ARM_WORDS[2:]
CONTROL = re.compile(r"\bcontrol\b", re.IGNORECASE)
WAIT_S = 30.0
SHOTS = os.environ.get("TRIALDESK_SCREENSHOTS")


# --- the server, its mail, its users ---------------------------------------------------


@dataclass
class Site:
    url: str
    env: dict[str, str]
    db: Database
    api: Api
    inbox: Inbox

    @property
    def study(self) -> str:
        return f"{self.url}/console/studies/{STUDY}"

    def user(self, role: str, *sites: str) -> str:
        """A new user of the role (and sites); their email address."""
        email = f"{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}@example.org"
        self.api.user(role, *sites, email=email)
        return email

    def link(self, email: str) -> str:
        """A sign-in link of the user, as `trialdesk users sign-in-link` makes one (in
        this process: the CLI's start-up is slow)."""
        with self.db.begin() as session:
            user = auth.find_user(session, email=email)
            assert user is not None, email
            _, token = sign_in.issue_link(
                session, user=user, lifetime=timedelta(minutes=15), actor_label="browser test"
            )
        return sign_in.sign_in_url(self.url, token)

    def cli_link(self, email: str) -> str:
        """A sign-in link from `trialdesk users sign-in-link`: the URL on the last line."""
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "users", "sign-in-link", email],
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    def enrolled(self, site: str = "PHL") -> str:
        """A participant enrolled through the API; the baseline is open."""
        return self.api.enroll(self.api.admin_token, site=site, name="Sam Example")

    def answered(self, code: str, *, self_harm: int = 0) -> None:
        """The participant's baseline submitted (PHQ-9 item 9 as given: above 0 alerts)."""
        self.api.complete_survey(code, answers={**BASELINE_ANSWERS, "phq9_9": self_harm})

    def randomized(self, code: str) -> None:
        done = self.api.randomize(self.api.admin_token, code)
        assert done.status_code == 200, done.text

    def emailed_link(self, email: str, *, seen: int) -> str:
        """The link of the sign-in email to `email` after the first `seen` of them."""
        deadline = time.monotonic() + WAIT_S
        while True:
            self.inbox.received.clear()  # before looking: a message arriving now wakes us
            mails = [m for m in self.inbox.to(email) if m["Subject"] == SUBJECT]
            if len(mails) > seen:
                text = body(mails[seen])
                found = re.search(rf"{re.escape(self.url)}/console/sign-in/[\w-]{{43}}", text)
                assert found, text
                return found.group(0)
            left = deadline - time.monotonic()
            assert left > 0, f"no sign-in email to {email} in {WAIT_S:.0f} s"
            self.inbox.received.wait(left)

    def sign_in_emails(self, email: str) -> int:
        return sum(1 for m in self.inbox.to(email) if m["Subject"] == SUBJECT)


@contextlib.contextmanager
def _server_at_its_base_url(env: dict[str, str]) -> Iterator[str]:
    """One server whose TRIALDESK_BASE_URL is its own address, so that the links it
    emails and shows open as they are (the port is chosen here, and handed to
    `running_servers` as the next free one)."""
    port = live.free_port()
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(live, "free_port", lambda: port)
            [started] = stack.enter_context(running_servers({**env, "TRIALDESK_BASE_URL": url}))
        assert started == url
        yield url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    path = tmp_path_factory.mktemp("console") / "trialdesk.db"
    shutil.copyfile(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}")
    db = Database(settings)
    with db.begin() as session:
        token = load_demo(session).token
    inbox = Inbox()
    with smtp_server(inbox) as smtp_port:
        env = {
            "TRIALDESK_DATABASE_URL": settings.database_url,
            "TRIALDESK_SCHEDULER": "true",  # it sends the sign-in emails (woken at once)
            "TRIALDESK_SCHEDULER_INTERVAL_S": "10",
            "TRIALDESK_SMTP_HOST": "127.0.0.1",
            "TRIALDESK_SMTP_PORT": str(smtp_port),
        }
        with (
            _server_at_its_base_url(env) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            env["TRIALDESK_BASE_URL"] = url
            yield Site(url, env, db, Api(client, admin_token=token), inbox)
    db.dispose()


@pytest.fixture(scope="module")
def randomized(site: Site) -> str:
    """A PHL participant, randomized (through the API)."""
    code = site.enrolled()
    site.randomized(code)
    return code


# --- the browser ------------------------------------------------------------------------


def _context(
    browser: Browser,
    *,
    javascript: bool = True,
    viewport: dict[str, int] = DESKTOP,
    storage: Any = None,
) -> BrowserContext:
    # The pages forbid inline script (CSP); axe is injected from outside the page.
    context = browser.new_context(
        viewport=viewport,
        java_script_enabled=javascript,
        bypass_csp=True,
        accept_downloads=True,
        storage_state=storage,
    )
    context.set_default_timeout(30_000)
    return context


def _signed_in(browser: Browser, site: Site, email: str, **options: Any) -> Page:
    """A page of a new context, signed in as the user through a sign-in link."""
    page = _context(browser, **options).new_page()
    page.goto(site.link(email))
    _press_sign_in(page, site)
    expect(page).to_have_url(f"{site.url}/console")
    return page


def _press_sign_in(page: Page, site: Site) -> None:
    """Press "Sign in" on a sign-in link's page (Chromium posts it with `Origin: null`:
    the page's referrer policy is no-referrer; the server takes that only with
    `Sec-Fetch-Site: same-origin`)."""
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console(/studies.*)?$"))


def test_the_sign_in_button_works_as_browsers_post_it(site: Site, browser: Browser) -> None:
    """The button of a sign-in link's page signs in, as the browser posts its form
    (with `Origin: null`: the page's referrer policy is no-referrer)."""
    page = _context(browser).new_page()
    page.goto(site.link(site.user("statistician")))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}/console")
    page.context.close()


def _sign_in_by_email(page: Page, site: Site, email: str) -> None:
    """Ask for a link on the sign-in form, open the emailed link, sign in."""
    seen = site.sign_in_emails(email)
    page.goto(f"{site.url}/console/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    page.goto(site.emailed_link(email, seen=seen))
    expect(page.locator("h1")).to_have_text("Sign in to Trialdesk")
    _press_sign_in(page, site)
    expect(page).to_have_url(f"{site.url}/console")
    # The studies; a coordinator of one study lands on its dashboard (the demo's).
    expect(page.locator("h1")).to_have_text(re.compile(r"^(Your studies|Dashboard)$"))
    assert email in page.locator(".nav-who").inner_text()


def _axe(page: Page, name: str = "") -> None:
    """No axe-core violation at WCAG 2.1 AA on the page as it is now, and nothing wider
    than the screen (axe runs as a script: the tab must allow script)."""
    _look(page, name)
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None and width <= viewport["width"], f"{page.url}: {width} px wide"
    axe_finds_nothing(page)


def _look(page: Page, name: str) -> None:
    """Keep a screenshot of the page for a person to look at, if asked to."""
    if SHOTS and name:
        viewport = page.viewport_size or DESKTOP
        page.screenshot(path=f"{SHOTS}/{name}-{viewport['width']}.png", full_page=True)


def _choose(page: Page, question: str, answer: str) -> None:
    """Tap the label of an answer (as a person does: the whole row is the target)."""
    group = page.get_by_role("group", name=question, exact=True)
    group.locator("label", has_text=re.compile(rf"^{re.escape(answer)}$")).click()


def _screen_as_eligible(page: Page) -> None:
    for question in (
        "Participant is 18 or older",
        "Has a serious mental illness diagnosis",
        "Has regular internet access",
    ):
        _choose(page, question, "Yes")


def _code_of(page: Page) -> str:
    expect(page.locator("h1")).to_have_text(re.compile(r"^Participant PS-"))
    return page.locator("h1").inner_text().removeprefix("Participant ")


def _survey_status(page: Page, survey: str = "Baseline survey") -> str:
    """The survey's status in words, in its row of the record's grid (first instrument)."""
    row = page.locator("table.table-grid tr", has=page.locator("th", has_text=survey))
    return row.locator("td").first.inner_text()


def _open_alerts_on_dashboard(page: Page, site: Site) -> str:
    page.goto(site.study)
    expect(page.locator("h1")).to_have_text("Dashboard")
    heading = page.get_by_role("heading", name="Open safety alerts")
    return heading.locator("xpath=following-sibling::*[1]").inner_text()


def _notice(page: Page) -> str:
    return page.get_by_role("status").filter(has=page.locator("p")).first.inner_text()


# --- 1. the whole flow ------------------------------------------------------------------


def test_a_coordinator_enrolls_a_participant_who_answers_is_randomized_and_exported(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    coordinator = site.user("coordinator", "PHL")
    context = _context(browser)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = context.new_page()
    _sign_in_by_email(page, site, coordinator)

    # A coordinator of one study lands on its dashboard: no click on the study's name.
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".caption").first).to_have_text(STUDY_TITLE)
    page.get_by_role("navigation", name="Study").get_by_role("link", name="Enroll").click()
    expect(page.locator("h1")).to_have_text("Enroll a participant")
    assert page.locator("input[name=site]:checked").get_attribute("value") == "PHL"  # their only
    _screen_as_eligible(page)
    page.get_by_label("Participant's name").fill("Robin Example")
    page.get_by_label("Email address").fill("robin@example.org")
    page.get_by_role("button", name="Enroll").click()  # the diagnosis left out

    expect(page).to_have_title(re.compile(r"^Error: Enroll a participant"))
    summary = page.locator(".error-summary")
    expect(summary.get_by_role("heading")).to_have_text("There is a problem")
    assert summary.locator("a").all_inner_texts() == ["Choose the participant's diagnosis"]
    assert summary.locator("a").get_attribute("href") == "#strata-diagnosis"
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    beside = page.locator("#strata-diagnosis-error")
    expect(beside).to_have_text("Error: Choose the participant's diagnosis")
    assert "strata-diagnosis-error" in (
        page.get_by_role("group", name="Diagnosis", exact=True).get_attribute("aria-describedby")
        or ""
    )
    expect(page.get_by_label("Participant's name")).to_have_value("Robin Example")
    expect(page.get_by_label("Email address")).to_have_value("robin@example.org")
    for criterion in ("age_18_plus", "smi_diagnosis", "internet_access"):
        expect(page.locator(f"#screening-{criterion}")).to_be_checked()  # "Yes" kept
    summary.locator("a").click()
    assert page.evaluate("location.hash") == "#strata-diagnosis"
    _choose(page, "Diagnosis", "Bipolar disorder")  # the definition's label of `bipolar`
    page.get_by_role("button", name="Enroll").click()

    code = _code_of(page)
    assert page.url.endswith(f"/participants/{code}?done=enrolled")
    assert _notice(page) == "The participant is enrolled."
    assert _survey_status(page).startswith("Open until ")
    link = page.get_by_label("Personal link (for the participant only)")
    shown = link.input_value()
    assert shown.startswith(f"{site.url}/s/")
    copy = page.get_by_role("button", name="Copy link")
    expect(copy).to_be_visible()  # shown by the script, where the clipboard can be written
    copy.click()
    expect(page.locator("#link-baseline-status")).to_have_text("Link copied.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown

    # The participant, on their phone, in a browser of their own.
    phone = _context(browser, viewport=PHONE).new_page()
    phone.goto(copied)
    phone.get_by_role("link", name="Start the survey").click()  # past the intro page
    expect(phone).to_have_title("Part 1 of 2 — WHO-5 Well-Being Index")
    for item in range(1, 6):
        phone.locator(f"label[for='who5_{item}-3']").click()
    phone.get_by_role("button", name="Continue", exact=True).click()
    expect(phone).to_have_title("Part 2 of 2 — Patient Health Questionnaire (PHQ-9)")
    for item in range(1, 9):
        phone.locator(f"label[for='phq9_{item}-2']").click()  # several days
    phone.locator("label[for='phq9_9-2']").click()  # item 9 above 0: a safety alert
    phone.get_by_role("button", name="Submit your answers").click()
    expect(phone.locator("h1")).to_have_text("Thank you — your answers have been sent")
    phone.context.close()

    page.reload()
    assert _survey_status(page).startswith("Completed ")
    alert = page.locator(".alert-open")
    expect(alert).to_contain_text("Thoughts of self-harm (PHQ-9 item 9 above 0)")
    assert page.get_by_label("Personal link (for the participant only)").count() == 0
    assert code in _open_alerts_on_dashboard(page, site)

    page.go_back()
    page.get_by_role("button", name="Randomize").click()
    # Asked first, with the stratum that will be used; the arm is named after.
    expect(page.locator("h1")).to_have_text(f"Randomize {code}?")
    stratum = page.locator(".summary-row", has_text="Stratum").locator("dd")
    expect(stratum).to_have_text("Site PHL, diagnosis: Bipolar disorder")
    _axe(page, "randomize-confirmation")
    page.get_by_role("button", name="Randomize").click()
    expect(page.get_by_role("status").first).to_have_text("The participant is randomized.")
    expect(page.get_by_role("status").nth(1)).to_contain_text("Allocated to ")
    assert page.locator(".summary-row", has_text="Status").locator(".tag").inner_text() == (
        "Randomized"
    )
    arm = page.locator(".summary-row", has=page.locator("dt", has_text="Arm")).locator("dd")
    assert any(arm.inner_text().startswith(label) for label in ARM_LABELS), arm.inner_text()

    page.get_by_label("No adverse event").check()
    page.get_by_label("What was done").fill("Called Robin the same day; safety plan reviewed.")
    page.get_by_role("button", name="Acknowledge the alert").click()
    expect(page.get_by_role("status").first).to_have_text("The alert is acknowledged.")
    assert page.locator(".alert-open").count() == 0
    expect(page.locator(".alert-box")).to_contain_text("safety plan reviewed")
    assert code not in _open_alerts_on_dashboard(page, site)
    context.close()

    # A statistician, signed in with a link from the CLI, downloads the data package.
    statistician = site.user("statistician")
    analyst = _context(browser).new_page()
    analyst.goto(site.cli_link(statistician))
    _press_sign_in(analyst, site)
    expect(analyst).to_have_url(f"{site.url}/console")
    analyst.goto(f"{site.study}/exports")
    with analyst.expect_download() as started:
        analyst.get_by_role("link", name="Download the data package").click()
    download = started.value
    assert download.suggested_filename.endswith(".zip")
    saved = tmp_path / "package.zip"
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path / "package")
    report = validate(str(tmp_path / "package" / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    described = Package(str(tmp_path / "package" / "datapackage.json"))
    assert {r.name for r in described.resources} == {
        "blinded_long",
        "blinded_wide",
        "participants",
        "adverse_events",
        "deviations",
    }
    wide = (tmp_path / "package" / "blinded_wide.csv").read_text()
    assert len(wide.splitlines()) >= 2  # the header and at least Robin
    assert not any(word in wide for word in ARM_WORDS)
    analyst.context.close()


# --- 2. what each role may open ---------------------------------------------------------


def test_each_role_opens_only_its_pages_and_a_blinded_one_never_sees_an_arm(
    site: Site, browser: Browser, randomized: str
) -> None:
    participant = f"{site.study}/participants/{randomized}"

    # A coordinator of another site: the participant does not exist for them.
    pit = _signed_in(browser, site, site.user("coordinator", "PIT"))
    response = pit.goto(participant)
    assert response is not None and response.status == 404
    expect(pit.locator("h1")).to_have_text("Page not found")
    said = pit.locator("main").inner_text()
    assert "Sam Example" not in pit.content()
    pit.goto(f"{site.study}/participants/PS-PHL-9999")  # one that does not exist: the same
    assert pit.locator("main").inner_text() == said.replace(randomized, "PS-PHL-9999")
    pit.goto(f"{site.study}/participants")
    assert pit.get_by_role("link", name=randomized).count() == 0
    pit.context.close()

    # The open-label study shows the arms to its coordinators (so the check below can fail).
    phl = _signed_in(browser, site, site.user("coordinator", "PHL"))
    phl.goto(site.study)
    assert any(label in phl.content() for label in ARM_LABELS)
    phl.context.close()

    statistician = _signed_in(browser, site, site.user("statistician"))
    for path in ("/participants", "/enroll", "/worklist", f"/participants/{randomized}"):
        response = statistician.goto(site.study + path)
        assert response is not None and response.status == 403, path
        expect(statistician.locator("h1")).to_have_text("You cannot do this")
    for url in (
        f"{site.url}/console",
        site.study,
        f"{site.study}/reports",
        f"{site.study}/exports",
        f"{site.study}/reports/consort.svg",
    ):
        response = statistician.goto(url)
        assert response is not None and response.status == 200, url
        html = response.text()
        shown = [word for word in ARM_WORDS if word in html] + CONTROL.findall(html)
        assert shown == [], f"{url} shows {shown}"
        if url == site.study:
            assert "G1" in html  # the groups, coded
            menu = statistician.get_by_role("navigation", name="Study").inner_text()
            assert "Participants" not in menu and "Enroll" not in menu
            assert "Worklist" not in menu
    statistician.context.close()

    # Signed out, every console page leads to the sign-in page.
    gets = [
        "/console",
        f"/console/studies/{STUDY}",
        *(
            f"/console/studies/{STUDY}{path}"
            for path in (
                "/enroll",
                "/participants",
                f"/participants/{randomized}",
                "/worklist",
                "/worklist?format=csv",
                "/exports",
                "/exports/blinded?format=csv",
                "/exports/codebook",
                "/exports/package",
                "/reports",
                "/reports/consort.svg",
            )
        ),
        *_admin_pages(site),
    ]
    posts = [
        "/console/sign-out",
        f"/console/studies/{STUDY}/enroll",
        *(
            f"/console/studies/{STUDY}/participants/{randomized}{path}"
            for path in (
                "/randomize",
                "/withdraw",
                "/alerts/1/acknowledge",
                "/surveys/month_4/reissue",
                "/surveys/month_4/resend",
            )
        ),
        f"/console/studies/{STUDY}/exports/unblinded",
    ]
    with httpx.Client(base_url=site.url, timeout=30) as anonymous:
        for method, path in [("GET", p) for p in gets] + [("POST", p) for p in posts]:
            response = anonymous.request(method, path, data={"reason": "x"})
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/console/sign-in?"), path
    page = _context(browser).new_page()
    page.goto(participant)
    assert page.url.startswith(f"{site.url}/console/sign-in")
    expect(page.locator("h1")).to_have_text("Sign in to Trialdesk")
    page.context.close()


# --- 3. accessibility of every page state ------------------------------------------------


ADMIN_PAGES = (
    f"/console/studies/{STUDY}/setup",
    "/console/admin/users",
    "/console/admin/users/new",
    "/console/admin/studies/new",
    "/console/admin/audit",
)


def _admin_pages(site: Site) -> list[str]:
    """The set-up and administration pages that exist yet (a page that does not is a
    plain 404 even signed out; one that does sends a stranger to sign in); a warning
    names the others."""
    missing = [p for p in ADMIN_PAGES if site.api.client.get(p).status_code == 404]
    if missing:
        warnings.warn(f"not checked, not written yet: {', '.join(missing)}", stacklevel=2)
    return [p for p in ADMIN_PAGES if p not in missing]


def test_every_console_page_state_passes_axe_on_a_desktop(site: Site, browser: Browser) -> None:
    # Signed out: the form, its error, the email sent, the link's page, a used-up link.
    page = _context(browser).new_page()
    page.goto(f"{site.url}/console/sign-in")
    _axe(page, "sign-in")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page).to_have_title(re.compile(r"^Error: Sign in"))
    expect(page.locator("#email-error")).to_contain_text("Enter your email address")
    expect(page.get_by_label("Email address")).to_have_value("not an address")
    _axe(page, "sign-in-error")
    page.get_by_label("Email address").fill("nobody@example.org")
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    _axe(page, "check-your-email")
    page.goto(site.link(site.user("statistician")))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    _axe(page, "sign-in-link")
    response = page.goto(f"{site.url}/console/sign-in/too-short")
    assert response is not None and response.status == 410
    _axe(page, "sign-in-link-gone")
    page.context.close()

    open_survey = site.enrolled()
    alerted = site.enrolled()
    site.answered(alerted, self_harm=2)

    page = _signed_in(browser, site, site.user("coordinator", "PHL"))
    _axe(page, "home")
    page.goto(site.study)
    expect(page.get_by_role("link", name=alerted)).not_to_have_count(0)
    _axe(page, "dashboard")
    page.goto(f"{site.study}/enroll")
    _axe(page, "enroll")
    page.get_by_role("button", name="Enroll").click()
    expect(page.locator(".error-summary")).to_be_visible()
    _axe(page, "enroll-errors")
    page.goto(f"{site.study}/participants")
    _axe(page, "participants")
    page.goto(f"{site.study}/participants/{open_survey}")
    expect(page.get_by_role("button", name="Copy link")).to_be_visible()
    _axe(page, "participant-open-survey")
    page.goto(f"{site.study}/participants/{alerted}")
    expect(page.locator(".alert-open")).to_be_visible()
    _axe(page, "participant-alert")
    page.get_by_label("No adverse event").check()
    page.get_by_role("button", name="Acknowledge the alert").click()  # no note
    expect(page).to_have_title(re.compile(r"^Error: Enter a note"))
    _axe(page, "acknowledge-without-note")
    page.goto(f"{site.study}/worklist")
    _axe(page, "worklist")
    page.goto(f"{site.study}/reports")
    _axe(page, "reports")
    page.goto(f"{site.study}/incentives")  # the baselines answered earned their amounts
    expect(page.get_by_role("button", name="Approve").first).to_be_visible()
    _axe(page, "incentives")
    response = page.goto(f"{site.study}/participants/PS-ZZZZZZ")
    assert response is not None and response.status == 404
    _axe(page, "not-found")
    response = page.goto(f"{site.study}/exports")
    assert response is not None and response.status == 403
    _axe(page, "forbidden")
    page.context.close()

    page = _signed_in(browser, site, site.user("unblinded_statistician"))
    page.goto(f"{site.study}/exports")
    expect(page.get_by_role("button", name="Download the unblinded dataset")).to_be_visible()
    _axe(page, "exports-unblinded")
    page.get_by_role("button", name="Download the unblinded dataset").click()  # no reason
    expect(page).to_have_title(re.compile(r"^Error: Exports"))
    _axe(page, "exports-unblinded-error")
    page.context.close()

    admin_pages = _admin_pages(site)
    if admin_pages:
        page = _signed_in(browser, site, site.user("admin"))
        for path in admin_pages:
            response = page.goto(site.url + path)
            assert response is not None and response.status == 200, path
            _axe(page, path.removeprefix("/console/").replace("/", "-"))
        if "/console/admin/users" in admin_pages:  # and one user's page
            page.goto(f"{site.url}/console/admin/users")
            page.locator("main table a").first.click()
            expect(page.locator("h1")).not_to_have_text("Users")
            _axe(page, "admin-user")
        page.context.close()


def test_the_busiest_pages_pass_axe_on_a_tablet(site: Site, browser: Browser) -> None:
    code = site.enrolled()
    site.answered(code, self_harm=1)
    open_survey = site.enrolled()
    desktop = _signed_in(browser, site, site.user("coordinator", "PHL"))
    session = desktop.context.storage_state()
    desktop.context.close()
    page = _context(browser, viewport=TABLET, storage=session).new_page()
    for path, name in (
        ("", "dashboard"),
        ("/enroll", "enroll"),
        (f"/participants/{code}", "participant-alert"),
        (f"/participants/{open_survey}", "participant-open-survey"),
        ("/worklist", "worklist"),
        ("/reports", "reports"),
    ):
        response = page.goto(site.study + path)
        assert response is not None and response.status == 200, path
        _axe(page, name)
    page.get_by_role("navigation", name="Study").get_by_role("link", name="Enroll").click()
    page.get_by_role("button", name="Enroll").click()
    expect(page.locator(".error-summary")).to_be_visible()
    _axe(page, "enroll-errors")
    page.context.close()


def test_the_error_summary_of_the_enroll_form_follows_the_order_of_the_form(
    site: Site, browser: Browser
) -> None:
    page = _signed_in(browser, site, site.user("coordinator", "PHL"), javascript=False)
    page.goto(f"{site.study}/enroll")
    page.get_by_role("button", name="Enroll").click()
    listed = [
        str(href).removeprefix("#")
        for href in page.locator(".error-summary a").evaluate_all("as => as.map(a => a.hash)")
    ]
    beside = [
        str(ident).removesuffix("-error")
        for ident in page.locator("form .error-message").evaluate_all("ps => ps.map(p => p.id)")
    ]
    assert len(listed) == 5 and listed == beside
    page.context.close()


# --- 4. without JavaScript --------------------------------------------------------------


def test_without_javascript_staff_sign_in_enroll_randomize_acknowledge_and_export(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    coordinator = site.user("coordinator", "PHL")
    page = _context(browser, javascript=False).new_page()
    _sign_in_by_email(page, site, coordinator)

    page.goto(f"{site.study}/enroll")
    _screen_as_eligible(page)
    page.get_by_role("button", name="Enroll").click()  # no diagnosis, no name
    expect(page).to_have_title(re.compile(r"^Error: "))
    summary = page.locator(".error-summary").locator("a").all_inner_texts()
    assert sorted(summary) == ["Choose the participant's diagnosis", "Enter the participant's name"]
    _choose(page, "Diagnosis", "Major depressive disorder")
    page.get_by_label("Participant's name").fill("Kim Example")
    page.get_by_role("button", name="Enroll").click()
    code = _code_of(page)
    assert _survey_status(page).startswith("Open until ")
    assert page.get_by_label("Personal link (for the participant only)").input_value()
    assert not page.get_by_role("button", name="Copy link").is_visible()  # needs the script
    # Not before the baseline is completed (the study requires it): no button, a reason.
    expect(page.get_by_role("button", name="Randomize")).to_have_count(0)
    expect(
        page.get_by_text("can be randomized once the baseline survey is completed")
    ).to_be_visible()

    site.answered(code, self_harm=3)
    page.reload()
    page.get_by_role("button", name="Randomize").click()
    expect(page.locator(".summary-row", has_text="Stratum")).to_contain_text(
        "diagnosis: Major depressive disorder"
    )
    page.get_by_role("button", name="Randomize").click()  # the confirmation, without script
    expect(page.get_by_role("status").first).to_have_text("The participant is randomized.")
    page.get_by_label("No adverse event").check()
    page.get_by_label("What was done").fill("Spoke with Kim; referred to the crisis team.")
    page.get_by_role("button", name="Acknowledge the alert").click()
    expect(page.get_by_role("status").first).to_have_text("The alert is acknowledged.")
    assert page.locator(".alert-open").count() == 0
    page.context.close()

    page = _signed_in(browser, site, site.user("unblinded_statistician"), javascript=False)
    page.goto(f"{site.study}/exports")
    with page.expect_download() as started:
        page.get_by_role("link", name="Wide CSV").click()
    blinded = Path(started.value.path()).read_text()
    assert len(blinded.splitlines()) >= 2 and "Kim Example" not in blinded
    assert not any(word in blinded for word in ARM_WORDS)
    page.get_by_label("Why the arms are needed").fill("The primary analysis, as planned.")
    with page.expect_download() as started:
        page.get_by_role("button", name="Download the unblinded dataset").click()
    unblinded = Path(started.value.path()).read_text()
    assert started.value.suggested_filename.endswith(".csv")
    assert any(arm in unblinded for arm in ("listserv", "bulletin_board", "control"))
    page.context.close()


def test_a_coordinator_finds_a_participant_and_sees_open_alerts_first(
    site: Site, browser: Browser
) -> None:
    page = _signed_in(browser, site, site.user("coordinator", "PHL"))
    code = site.enrolled()
    site.answered(code, self_harm=2)  # an open safety alert
    page.goto(f"{site.study}/participants")
    page.get_by_label("Find a participant").fill(code.lower())
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=code, exact=True)).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("1 participant found")
    _axe(page, "participants-search")
    page.get_by_label("Find a participant").fill("sam exam")  # part of a name
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=code, exact=True)).to_be_visible()
    page.goto(f"{site.study}/participants")
    page.get_by_label("Randomization").select_option("ready")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("link", name=code, exact=True)).to_be_visible()
    _axe(page, "participants-ready")

    page.get_by_role("link", name=re.compile(r"^Alerts \d+")).click()  # the badge
    heading = page.get_by_role("heading", name=re.compile(r"^Open safety alerts \(\d+\)$"))
    expect(heading).to_be_visible()
    row = page.locator("#alerts-heading ~ div tr", has_text=code)
    expect(row).to_contain_text("open ")
    _axe(page, "worklist-alerts")
    page.goto(site.study)
    expect(page.locator("main h2").first).to_have_text(re.compile(r"^Open safety alerts"))
    _axe(page, "dashboard-alerts")
