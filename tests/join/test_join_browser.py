"""The remote sign-up end to end in a real browser (Debian's Chromium, Playwright) at
390 x 844 against a real server, in the person's language: Spanish from the language
links to the submitted baseline, with the signed copy's PDF read out of the SMTP sink;
every page state of an Arabic (right-to-left) study; the screening page with JavaScript
off. axe-core (WCAG 2.1 AA) runs on every page state, and no page is wider than the phone.
TRIALDESK_SCREENSHOTS=DIR keeps a screenshot of each state at 390 px and on a desktop.
(tests/join/test_browser.py checks the English pages; this adds the languages.)"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from pypdf import PdfReader
from sqlalchemy import select

from app.config import Settings
from app.consent.documents import document_sha256
from app.consent.models import Consent
from app.db.engine import Database
from app.demo import demo_definition, load_demo
from app.i18n.languages import LANGUAGES
from app.scheduler.dispatch import dispatch
from app.scheduler.mail import SmtpTransport
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.studies.translation import texts
from tests.join.test_flow import CONSENT
from tests.live import running_servers
from tests.smtp import Inbox, body, smtp_server
from tests.surveys.test_browser import _axe

pytestmark = pytest.mark.slow

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
SPANISH = "join-es"  # the demo study, Spanish included, with a join link of its own
ARABIC = "join-ar"  # a small study in English and Arabic
SHOTS = os.environ.get("TRIALDESK_SCREENSHOTS")
# The demo's quiz: the option (1-based) that is right, and one that is not.
RIGHT = {"choose_group": 3, "stop_any_time": 1, "hurt_answers": 2}
WRONG = {"choose_group": 1, "stop_any_time": 3, "hurt_answers": 1}

# The Arabic study's texts: those of the pages walked through here in words, the rest
# (survey questions nobody opens here) marked as translated.
ARABIC_TEXTS = {
    "participant_title": "دراسة الدعم بين الأقران عبر الإنترنت",
    "randomization.strata.diagnosis.question": "أي من هذه التشخيصات أعطاك إياه طبيب؟",
    "join.ineligible_text": "شكرا لاهتمامك. للدعم اتصل بالرقم 988.",
}
ARABIC_CONSENT = {
    "title": "الموافقة على المشاركة في الدراسة",
    "sections": [
        {"heading": "ماذا يحدث", "body": "تجيب عن **استبيانات** قصيرة عبر الإنترنت."},
        {"heading": "اختيارك", "body": "يمكنك ترك الدراسة في أي وقت."},
    ],
    "quiz": [
        {
            "code": "leave",
            "question": "هل يمكنك ترك الدراسة في أي وقت؟",
            "options": [{"value": "yes", "label": "نعم"}, {"value": "no", "label": "لا"}],
            "answer": "yes",
            "feedback": "يمكنك ترك الدراسة في أي وقت ومن دون ذكر سبب.",
        }
    ],
}


@dataclass
class Site:
    url: str
    db: Database  # the server's database, its settings naming the SMTP sink
    inbox: Inbox


def _arabic_study() -> dict[str, Any]:
    consent: dict[str, Any] = CONSENT["documents"][0]
    document: dict[str, Any] = demo_definition() | {
        "slug": ARABIC,
        "languages": ["en", "ar"],
        "consent_versions": ["1.0"],
        "consent": {"documents": [consent | {"texts": consent["texts"] | {"ar": ARABIC_CONSENT}}]},
        "join": {"enabled": True, "min_seconds": 0, "ineligible_text": "Call 988."},
        "translations": {},
    }
    wanted = texts(StudyDefinition.model_validate(document | {"languages": ["en"]}))
    document["translations"] = {
        "ar": {path: ARABIC_TEXTS.get(path, f"نص مترجم {n}") for n, path in enumerate(wanted)}
    }
    return document


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    path = tmp_path_factory.mktemp("join-languages") / "trialdesk.db"
    shutil.copyfile(sqlite_template, path)
    demo = demo_definition()
    spanish = demo | {"slug": SPANISH, "join": demo["join"] | {"min_seconds": 0}}
    inbox = Inbox()
    with smtp_server(inbox) as port:
        settings = Settings(database_url=f"sqlite:///{path}", smtp_host="127.0.0.1", smtp_port=port)
        db = Database(settings)
        with db.begin() as session:
            load_demo(session)
            for document in (spanish, _arabic_study()):
                study = studies.create_study(
                    session, definition=StudyDefinition.model_validate(document), actor=None
                )
                for code, name in (("PHL", "Philadelphia"), ("PIT", "Pittsburgh")):
                    studies.add_site(session, study=study, code=code, name=name, actor=None)
                studies.activate_study(session, study=study, actor=None)
        env = {"TRIALDESK_DATABASE_URL": settings.database_url, "TRIALDESK_SCHEDULER": "false"}
        with running_servers(env) as [url]:
            yield Site(url, db, inbox)
        db.dispose()


def _page(browser: Browser, *, javascript: bool = True) -> Page:
    # The pages forbid inline script (CSP); axe is injected from outside the page.
    context = browser.new_context(viewport=PHONE, bypass_csp=True, java_script_enabled=javascript)
    context.set_default_timeout(30_000)
    return context.new_page()


def _checker(page: Page, prefix: str) -> Callable[[str], None]:
    """A check of the page state as it is now: the direction of its language, no wider
    than the phone,
    axe-core at WCAG 2.1 AA (and screenshots at both widths, if asked for)."""

    def check(name: str) -> None:
        shown = page.locator("html").get_attribute("lang")
        assert shown in LANGUAGES, shown
        expect(page.locator("html")).to_have_attribute("dir", LANGUAGES[shown].direction)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name}: {width} px wide on a phone"
        _axe(page)
        if SHOTS:
            stem = f"{SHOTS}/{prefix}-{name}"
            page.screenshot(path=f"{stem}-390.png", full_page=True)
            page.set_viewport_size(DESKTOP)
            page.screenshot(path=f"{stem}-desktop.png", full_page=True)
            page.set_viewport_size(PHONE)

    return check


def _tap(page: Page, target: str) -> None:
    """Tap the label of a radio or check box by its input's id (as a person does)."""
    page.locator(f"label[for='{target}']").click()


def _submit(page: Page) -> None:
    page.locator("main form button[type=submit]").first.click()


def _answer_screening(page: Page, *, eligible: bool) -> None:
    names = page.locator("main input[type=radio]").evaluate_all(
        "(inputs) => [...new Set(inputs.map(i => i.name))]"
    )
    for name in names:
        first_criterion = name == names[0]
        if name.startswith("c-"):
            _tap(page, f"{name}-{'no' if first_criterion and not eligible else 'yes'}")
        else:
            _tap(page, f"{name}-2" if name.startswith("s-") else f"{name}-1")
    _submit(page)


@dataclass
class Person:
    language: str
    name: str
    typed: str  # the name as they type it to sign (case and spaces their own)
    email: str
    right: dict[str, int]
    wrong: dict[str, int]


def _sign_up(
    page: Page,
    url: str,
    slug: str,
    person: Person,
    check: Callable[[str], None],
    *,
    screened_out_first: bool = True,
) -> None:
    """From the study's link to the confirmation, in the person's language, through each
    page state (errors included) once. Screened out first (the ineligible page) unless
    the sign-up must be enrolled: an eligible screening right after an ineligible one
    from the same address is held as a re-screening."""
    page.goto(f"{url}/join/{slug}")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    check("language-choice")
    page.locator(f"nav a[hreflang='{person.language}']").click()
    expect(page.locator("html")).to_have_attribute("lang", person.language)
    expect(page.locator("html")).to_have_attribute("dir", LANGUAGES[person.language].direction)
    expect(page.locator("nav a[aria-current=true]")).to_have_attribute("hreflang", person.language)
    check("screening")
    _submit(page)
    expect(page).to_have_title(re.compile(r"^\S+: "))  # "Error: " in the language
    expect(page.locator(".error-summary")).to_be_focused()
    check("screening-errors")
    if screened_out_first:
        _screened_out(page, check)
        page.goto(f"{url}/join/{slug}?lang={person.language}")
    _answer_screening(page, eligible=True)
    expect(page).to_have_url(re.compile(r"/join/a/[\w-]{43}/contact$"))
    expect(page.locator("html")).to_have_attribute("lang", person.language)
    check("contact")
    page.locator("#email").fill("not an address")
    _submit(page)
    expect(page.locator(".error-summary")).to_be_visible()
    check("contact-errors")
    page.locator("#name").fill(person.name)
    page.locator("#email").fill(person.email)
    page.locator("#phone").fill("215 555 0100")
    if page.locator("#dob-day").count():  # when the study asks for it
        for field, value in (("day", "27"), ("month", "3"), ("year", "1990")):
            page.locator(f"#dob-{field}").fill(value)
    _submit(page)

    part = 1
    carried = r"(\?document=[0-9a-f]{64})?$"  # each section's link carries the document's hash
    while re.search(rf"/consent/{part}{carried}", page.url):
        expect(page.locator(".progress")).to_have_attribute("value", str(part))
        check(f"consent-{part}")
        page.locator("main .buttons a.button:not(.button-secondary)").click()
        page.wait_for_url(re.compile(rf"/(consent/{part + 1}|quiz){carried}"))
        part += 1
    assert part > 2, "the document has more than one section"
    check("quiz")
    for code, option in person.wrong.items():
        _tap(page, f"q-{code}-{option}")
    _submit(page)
    expect(page.locator(".notice[role=status]")).to_be_visible()
    for code in person.wrong:  # the feedback beside each wrong answer, the choice cleared
        expect(page.locator(f"#q-{code}-feedback")).to_be_visible()
        expect(page.locator(f"#q-{code}-{person.wrong[code]}")).not_to_be_checked()
    check("quiz-feedback")
    for code, option in person.right.items():
        _tap(page, f"q-{code}-{option}")
    _submit(page)
    expect(page.locator("main dl.summary")).to_contain_text(person.email)
    check("check-answers")
    _submit(page)
    expect(page.locator("#typed_name")).to_be_visible()
    check("sign")
    page.locator("#typed_name").fill("Someone Else")
    _submit(page)
    expect(page.locator(".error-message")).to_have_count(2)  # the name, the box
    check("sign-errors")
    page.locator("#typed_name").fill(person.typed)
    _tap(page, "agree")
    _submit(page)
    expect(page).to_have_url(re.compile(r"/join/a/[\w-]{43}/done$"))
    check("done")


def _answer_survey(page: Page) -> None:
    """Each part of the survey: the first answer of every question, then on."""
    page.locator("main a.button-start").click()
    while True:
        names = page.locator("main input[type=radio]").evaluate_all(
            "(inputs) => [...new Set(inputs.map(i => i.name))]"
        )
        for name in names:
            _tap(page, f"{name}-1")
        last = page.locator("main button[value=submit]")
        if last.count():
            last.click()
            return
        title = page.title()
        page.locator("main button[value=next]").click()
        expect(page).not_to_have_title(title)


def _pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _screened_out(page: Page, check: Callable[[str], None]) -> None:
    _answer_screening(page, eligible=False)
    expect(page.locator("main a[href^='tel:']").first).to_be_visible()  # the support text
    check("ineligible")


def test_a_person_signs_up_in_spanish_and_gets_the_signed_copy_by_email(
    site: Site, browser: Browser
) -> None:
    page = _page(browser)
    email = "ana.lopez@example.org"
    spanish = Person("es", "Ana María López", "ana maría  LÓPEZ", email, RIGHT, WRONG)
    check = _checker(page, "es")
    _sign_up(page, site.url, SPANISH, spanish, check, screened_out_first=False)
    expect(page.locator("h1")).to_have_text("Gracias por aceptar participar")
    assert email in page.locator("main").inner_text()

    page.get_by_role("link", name="Empezar su primera encuesta").click()
    expect(page).to_have_url(re.compile(r"/s/[\w-]{43}$"))
    expect(page.locator("html")).to_have_attribute("lang", "es")
    _answer_survey(page)
    expect(page.locator("h1")).to_have_text(re.compile("^Gracias"))
    expect(page.locator("html")).to_have_attribute("lang", "es")
    _axe(page)
    page.goto(f"{site.url}/join/{SPANISH}?lang=es")  # the ineligible page, in Spanish
    _screened_out(page, check)
    page.context.close()

    # The copy is made and sent by the scheduler's send pass (here, in this process).
    dispatch(site.db, SmtpTransport(site.db.settings), now=datetime.now(UTC))
    [message] = [m for m in site.inbox.to(email) if m.get_content_type() == "multipart/mixed"]
    assert str(message["Subject"]).startswith("Su consentimiento firmado: ")
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    with site.db.session(write=False) as session:
        consent = session.scalars(select(Consent).where(Consent.language == "es")).one()
        sha, version = consent.document_sha256, consent.version
    document = StudyDefinition.model_validate(demo_definition()).consent.active()
    assert document is not None and sha == document_sha256(document, "es")
    shown = _pdf_text(attachment.get_content())
    # The signature is the name as typed (its spaces collapsed), bound to the hash.
    for expected in ("ana maría LÓPEZ", f"Versión {version}", sha):
        assert expected in shown, expected
    assert version in body(message)


def test_every_page_state_of_an_arabic_study_reads_right_to_left(
    site: Site, browser: Browser
) -> None:
    page = _page(browser)
    arabic = Person("ar", "ليلى حسن", "ليلى  حسن", "layla@example.org", {"leave": 1}, {"leave": 2})
    _sign_up(page, site.url, ARABIC, arabic, _checker(page, "ar"))
    assert ARABIC_TEXTS["participant_title"] in page.title()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.context.close()

    # Without JavaScript, the screening page works the same: errors, then the next step.
    page = _page(browser, javascript=False)
    page.goto(f"{site.url}/join/{SPANISH}?lang=es")
    expect(page.locator("h1")).to_have_text("¿Puede participar?")
    _submit(page)
    expect(page.locator(".error-summary")).to_contain_text("Hay un problema")
    assert page.locator(".error-summary a").count() == page.locator(".error-message").count() > 0
    _answer_screening(page, eligible=True)
    expect(page.locator("h1")).to_have_text("Sus datos de contacto")
    page.context.close()
