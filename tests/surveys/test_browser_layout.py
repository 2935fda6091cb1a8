"""The survey as its authors wrote it, in Chromium on a 360x740 phone and a desktop, with
JavaScript on and off: the intro page, "Part 2 of 2" with its bar, the stem as every
question's description, the crisis text beside PHQ-9 item 9, and the text-size choice;
axe-core on every new page state. Screenshots go to the test's tmp folder (and to
$TRIALDESK_SCREENSHOTS when set, to look at)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.surveys.test_browser import (  # noqa: F401 (the `site` fixture)
    DESKTOP,
    PHONE,
    Site,
    _axe,
    _choose,
    _page,
    site,
)
from tests.surveys.test_page_layout import PHQ9_STEM, SHOWN_NAME, WHO5_STEM

pytestmark = pytest.mark.slow


def _shot(page: Page, tmp_path: Path, name: str, *, full_page: bool = True) -> None:
    folder = Path(os.environ.get("TRIALDESK_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def _font_size(page: Page) -> float:
    return float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))


def _target_sizes(page: Page) -> list[tuple[float, float]]:
    boxes = [page.locator(".text-size-link").nth(n).bounding_box() for n in range(2)]
    return [(box["width"], box["height"]) for box in boxes if box is not None]


@pytest.mark.parametrize(
    ("javascript", "viewport"),
    [(True, PHONE), (False, PHONE), (True, DESKTOP)],
    ids=["phone", "phone-no-javascript", "desktop"],
)
def test_a_participant_reads_the_intro_the_stems_and_the_help_beside_item_9(
    site: Site,  # noqa: F811
    browser: Browser,
    tmp_path: Path,
    javascript: bool,
    viewport: dict[str, int],
) -> None:
    name = f"{'phone' if viewport == PHONE else 'desktop'}-{'js' if javascript else 'nojs'}"
    _code, link = site.new_participant()
    page = _page(browser, javascript=javascript, viewport=viewport)

    page.goto(link)
    expect(page).to_have_title(f"Before you start — {SHOWN_NAME}")
    expect(page.locator(".header-title")).to_have_text(SHOWN_NAME)
    expect(page.locator("main")).to_contain_text("It takes about 10 minutes, in 2 parts.")
    expect(page.locator("main")).to_contain_text("someone from the team may call you")
    assert page.locator("main a[href='tel:988']").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    _shot(page, tmp_path, f"intro-{name}")
    if javascript:
        _axe(page)
    page.get_by_role("link", name="Start the survey").click()

    expect(page).to_have_title("Part 1 of 2 — WHO-5 Well-Being Index")
    expect(page.locator(".progress-block")).to_contain_text("Part 1 of 2")
    question = page.get_by_role("group", name="I have felt cheerful and in good spirits")
    expect(question).to_have_accessible_description(WHO5_STEM)
    expect(page.get_by_text("can be left out")).to_have_count(0)
    _shot(page, tmp_path, f"part1-{name}", full_page=False)
    if javascript:
        _axe(page)
    for item in range(1, 6):
        _choose(page, f"who5_{item}", 2)
    page.get_by_role("button", name="Continue", exact=True).click()

    expect(page).to_have_title("Part 2 of 2 — Patient Health Questionnaire (PHQ-9)")
    expect(page.locator(".progress-block")).to_contain_text("Part 2 of 2")
    assert page.locator("progress").evaluate("p => p.value / p.max") == 1
    item_9 = page.get_by_role("group", name="Thoughts that you would be better off dead")
    expect(item_9).to_have_accessible_description(PHQ9_STEM)
    crisis = page.locator("#phq9_9-crisis")
    expect(crisis).to_be_visible()
    expect(crisis).to_contain_text("If you need help now")
    assert crisis.locator("a[href='tel:988']").count() == 1
    assert page.locator(".crisis").count() == 1  # beside item 9 only
    below_item_9 = item_9.bounding_box()
    beside = crisis.bounding_box()
    button = page.get_by_role("button", name="Submit your answers").bounding_box()
    assert below_item_9 and beside and button
    assert below_item_9["y"] + below_item_9["height"] <= beside["y"] < button["y"]
    crisis.scroll_into_view_if_needed()
    _shot(page, tmp_path, f"crisis-{name}", full_page=False)
    _shot(page, tmp_path, f"part2-{name}")
    if javascript:
        _axe(page)
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_text_size_choice_works_with_and_without_script_and_is_remembered(
    site: Site,  # noqa: F811
    browser: Browser,
    tmp_path: Path,
    javascript: bool,
) -> None:
    _code, link = site.new_participant()
    page = _page(browser, javascript=javascript)
    page.goto(f"{link}?part=1")
    standard = _font_size(page)
    assert all(w >= 44 and h >= 44 for w, h in _target_sizes(page))
    _choose(page, "who5_1", 1)

    page.get_by_role("link", name="Large text size").click()
    expect(page.locator("html")).to_have_class("text-large")
    expect(page.get_by_role("link", name="Large text size")).to_have_attribute(
        "aria-current", "true"
    )
    assert _font_size(page) >= standard * 1.2
    if javascript:  # applied in place: what was chosen is still chosen
        assert page.locator("#who5_1-1").is_checked()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert all(w >= 44 and h >= 44 for w, h in _target_sizes(page))
    _shot(page, tmp_path, f"large-{'js' if javascript else 'nojs'}", full_page=False)
    if javascript:
        _axe(page)

    page.goto(f"{link}?part=2")  # another page, later: still large
    expect(page.locator("html")).to_have_class("text-large")
    page.get_by_role("link", name="Standard text size").click()
    expect(page.locator("html")).not_to_have_class("text-large")
    page.reload()
    expect(page.locator("html")).not_to_have_class("text-large")
    page.context.close()
