"""The participant's record page in a real browser (Debian's Chromium, Playwright): open
safety alerts above every action, the timepoints x instruments grid, each completed
survey's answers read in a collapsed section, the links to enter and correct answers;
a coordinator the study keeps blind to arms never reads the answers to the instrument
only some arms have, which an unblinded admin reads on the same page. axe-core checks
each page state at WCAG 2.1 AA (see tests/console/test_browser.py for the server)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Browser, expect

from app.demo import demo_definition
from tests.console.test_browser import Site, _axe, _signed_in, site  # noqa: F401 (fixture)
from tests.helpers import BASELINE_ANSWERS, bearer

pytestmark = pytest.mark.slow

SELF_HARM = "Thoughts that you would be better off dead or of hurting yourself in some way"
GROUP_QUESTION = "How helpful has the group been to you?"
GROUP_ANSWERS = {"gx_frequency": 3, "gx_helpful": 4, "gx_supported": True}
WHO5 = {f"who5_{i}": 2 for i in range(1, 6)}


def test_a_coordinator_reads_alerts_first_then_the_grid_and_the_answers(
    site: Site,  # noqa: F811
    browser: Browser,
) -> None:
    code = site.enrolled()
    site.answered(code, self_harm=2)  # a completed baseline and an open safety alert
    page = _signed_in(browser, site, site.user("coordinator", "PHL"))
    page.goto(f"{site.study}/participants/{code}")

    # The open alert comes first: above the status, and above every button but its own.
    expect(page.locator("main h2").first).to_have_text("Open safety alerts (1)")
    alert = page.locator(".alert-open")
    expect(alert).to_contain_text(SELF_HARM)
    expect(alert.locator(".summary-row", has_text="Answer given")).to_contain_text(
        "More than half the days"
    )
    expect(alert.locator(".summary-row", has_text="phq9_total")).to_contain_text("10")
    expect(alert).to_contain_text(re.compile(r"open (less than a minute|\d+ minutes?)"))
    randomize = page.get_by_role("button", name="Randomize")
    alert_box, button_box = alert.bounding_box(), randomize.bounding_box()
    assert alert_box is not None and button_box is not None
    assert alert_box["y"] + alert_box["height"] <= button_box["y"]
    assert alert_box["y"] < page.locator("dl.summary").last.bounding_box()["y"]  # type: ignore[index]

    # The grid: a row per timepoint, a column per instrument, the status in words.
    grid = page.get_by_role("table", name=re.compile("^The participant's surveys"))
    baseline = grid.locator("tr", has=page.locator("th", has_text="Baseline survey"))
    expect(baseline.locator("td").nth(0)).to_have_text(
        re.compile(r"^Completed \d{1,2} \w{3} \d{4}")
    )
    expect(baseline.locator("td").nth(2)).to_have_text("Not asked")  # the group's questions
    expect(grid.locator("th[scope=col]")).to_have_text(
        [
            "Survey",
            "WHO-5 Well-Being Index",
            "Patient Health Questionnaire (PHQ-9)",
            "Your online group",
        ]
    )
    correct = page.get_by_role("link", name=re.compile("^Correct an answer"))
    assert correct.get_attribute("href", timeout=1000) == (
        f"/console/studies/peer-support/participants/{code}/surveys/baseline/correct"
    )

    # The answers are collapsed until asked for, from the grid's cell or their summary.
    answers = page.locator("#answers-baseline")
    expect(answers.get_by_text("I have felt cheerful and in good spirits")).to_be_hidden()
    _axe(page, "record-alert")
    answers.locator("summary").click()
    row = answers.locator(".summary-row", has_text="I have felt cheerful and in good spirits")
    expect(row.locator("dd")).to_have_text("More than half of the time")
    expect(answers.locator(".summary-row", has_text="who5_raw").locator("dd")).to_have_text("15")
    _axe(page, "record-answers")

    page.get_by_label("No adverse event").check()
    page.get_by_label("What was done").fill("Called the same day; safety plan reviewed.")
    page.get_by_role("button", name="Acknowledge the alert").click()
    expect(page.get_by_role("status").first).to_have_text("The alert is acknowledged.")
    expect(page.locator(".alert-open")).to_have_count(0)
    earlier = page.locator(".alert-box")
    expect(earlier).to_contain_text("safety plan reviewed")
    expect(earlier).to_contain_text(SELF_HARM)
    history = page.get_by_role("table", name=re.compile("^What happened to this participant"))
    expect(history).to_contain_text("Safety alert raised: Thoughts of self-harm")
    expect(history).to_contain_text("Safety alert acknowledged")
    _axe(page, "record-acknowledged")
    page.context.close()


def _blind_study(server: Site) -> str:
    """A copy of the demo study that keeps coordinators blind, with a survey open from
    the randomization that asks the online arms' group questions too."""
    slug = f"blind-{uuid.uuid4().hex[:6]}"
    document = demo_definition() | {"slug": slug}
    document["blinding"] = {"arm_visible_to": ["admin", "unblinded_statistician"]}
    document["schedule"].append(
        {"code": "week_1", "anchor": "randomization", "day": 0, "close_after": 14,
         "instruments": ["who5", "group_experience"]}
    )  # fmt: skip
    admin = bearer(server.api.admin_token)
    client = server.api.client
    assert client.post("/api/v1/studies", json=document, headers=admin).status_code == 201
    added = client.post(
        f"/api/v1/studies/{slug}/sites", json={"code": "PHL", "name": "Philadelphia"}, headers=admin
    )
    assert added.status_code == 201, added.text
    assert client.post(f"/api/v1/studies/{slug}/activate", headers=admin).status_code == 200
    return slug


def test_a_blind_coordinator_never_reads_the_arm_limited_answers(
    site: Site,  # noqa: F811
    browser: Browser,
) -> None:
    slug = _blind_study(site)
    api = site.api
    for _ in range(12):  # randomized until one answers the group's questions
        code = api.enroll(api.admin_token, study=slug, name="Lee Example")
        api.complete_survey(code, study=slug, answers=BASELINE_ANSWERS)
        assert api.randomize(api.admin_token, code, study=slug).status_code == 200
        shown = api.client.get(
            f"/api/v1/studies/{slug}/participants/{code}", headers=bearer(api.admin_token)
        )
        if shown.json()["arm"] != "control":  # the online arms answer the group's questions
            token = api.survey_token(code, study=slug, timepoint="week_1")
            given = WHO5 | GROUP_ANSWERS
            done = api.client.post(f"/api/v1/surveys/{token}/submit", json={"answers": given})
            assert done.status_code == 200, done.text
            break
    else:  # pragma: no cover - twelve participants, none in an online arm
        raise AssertionError("no participant in an online arm")
    path = f"{site.url}/console/studies/{slug}/participants/{code}"

    # The admin sees arms in this study: the group's answers are there to be hidden.
    admin = _signed_in(browser, site, site.user("admin"))
    admin.goto(path)
    admin.locator("#answers-week_1 summary").click()
    expect(admin.locator("#answers-week_1")).to_contain_text(GROUP_QUESTION)
    admin.context.close()

    page = _signed_in(browser, site, _coordinator_of(site, slug))
    page.goto(path)
    page.locator("#answers-week_1 summary").click()
    week = page.locator("#answers-week_1")
    expect(week).to_contain_text("I have felt cheerful and in good spirits")
    grid = page.get_by_role("table", name=re.compile("^The participant's surveys"))
    expect(grid.locator("th[scope=col]")).to_have_text(
        ["Survey", "WHO-5 Well-Being Index", "Patient Health Questionnaire (PHQ-9)"]
    )
    content = page.content()
    for hidden in (GROUP_QUESTION, "Your online group", "Very helpful", "Not in this arm"):
        assert hidden not in content, hidden
    _axe(page, "record-blind")
    page.context.close()


def _coordinator_of(server: Site, slug: str) -> str:
    """A coordinator of PHL in the study of this slug; their email address."""
    email = f"coordinator-{uuid.uuid4().hex[:8]}@example.org"
    server.api.user("coordinator", "PHL", study=slug, email=email)
    return email
