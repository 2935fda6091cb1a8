"""The console's consent pages in a real browser (Debian's Chromium, Playwright) on a
360 px phone: an admin's amendment refused with its problems by path in "There is a
problem", then added; a participant's consents section with its electronic consent
(the whole hash on demand, the signed copy downloaded) and the in-person form refused.
axe-core checks each state at WCAG 2.1 AA, and no page is wider than the phone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from app.consent import service as consents
from app.participants.models import Participant
from app.studies.models import Study
from app.studies.service import definition_of
from tests.consent.test_consent import document
from tests.console.test_browser import Site, _axe, _signed_in
from tests.console.test_browser import site as site  # the module's server (a fixture)
from tests.helpers import STUDY
from tests.surveys.test_browser import PHONE

pytestmark = pytest.mark.slow


def _signed_electronically(site: Site, code: str, version: str) -> None:
    """The participant signs `version` through the consent service (the participant
    pages are another part's)."""
    with site.db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        doc = definition_of(study).consent.document(version)
        assert doc is not None
        participant = session.scalars(select(Participant).where(Participant.code == code)).one()
        consents.sign_electronic(
            session,
            study=study,
            site_id=participant.site_id,
            document=doc,
            language="en",
            typed_name="Sam Example",
            quiz_answers={"leave": "yes"},
            quiz_attempts=1,
            participant_id=participant.id,
            email="sam@example.org",
            now=datetime.now(UTC),
        )
        consents.note_current_version(session, participant=participant)


def test_an_amendment_with_errors_and_a_participants_consents_on_a_phone(
    site: Site, browser: Browser
) -> None:
    admin = _signed_in(browser, site, site.user("admin"), viewport=PHONE)
    admin.goto(f"{site.study}/setup")
    pasted = admin.get_by_label("Consent document (YAML or JSON)")
    pasted.fill("version: '2.0'\ntexts:\n  en:\n    title: ''\n")
    admin.get_by_role("button", name="Add the consent version").click()
    summary = admin.locator(".error-summary")
    expect(summary).to_contain_text("There is a problem")
    expect(summary).to_contain_text("texts.en")
    assert admin.title().startswith("Error: ")
    _axe(admin, "consent-amendment-errors")
    pasted.fill(json.dumps(document("2.0"), indent=2))  # in each of the demo's languages
    admin.get_by_role("button", name="Add the consent version").click()
    expect(admin.get_by_role("status")).to_contain_text("The consent version is added")

    code = site.enrolled()
    _signed_electronically(site, code, "2.0")
    coordinator = _signed_in(browser, site, site.user("coordinator", "PHL"), viewport=PHONE)
    coordinator.goto(f"{site.study}/participants/{code}")
    section = coordinator.locator("section", has=coordinator.locator("#consents-heading"))
    expect(section).to_contain_text("Replaced by a later consent")
    section.locator("details.hash summary").click()
    expect(section.locator("details.hash code")).to_be_visible()
    with coordinator.expect_download() as download:
        section.get_by_role("link", name="Download the signed copy of version 2.0 (PDF)").click()
    assert download.value.suggested_filename == f"{code}-consent-{_last_id(site, code)}.pdf"
    section.get_by_text("Record consent taken in person").click()
    _axe(coordinator, "participant-consents")
    future = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    section.get_by_label("Date consent was taken").fill(future)
    section.get_by_role("button", name="Record the consent").click()
    expect(coordinator.locator(".error-summary")).to_contain_text("not in the future")
    _axe(coordinator, "consent-record-errors")


def _last_id(site: Site, code: str) -> int:
    with site.db.session(write=False) as session:
        pid = session.scalars(select(Participant.id).where(Participant.code == code)).one()
        return consents.consents_of(session, participant_id=pid)[-1].id
