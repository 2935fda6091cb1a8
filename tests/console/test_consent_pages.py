"""The console's consent pages (SPEC 10): a participant's consents on their record page
(states in words, the signed copy, the countersignature), a consent taken in person,
the day consent was taken asked at enrollment, an admin's amendment pasted on the
set-up page (problems by path, nothing stored), and the re-consent worklist. One
database per backend for the module (a study that countersigns, in English and
Spanish); each test makes participants of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit.models import AuditRecord
from app.config import Settings
from app.consent import service as consents
from app.consent.models import Consent
from app.db.engine import Database
from app.demo import load_demo
from app.main import create_app
from app.participants.models import Participant
from app.studies.models import Study
from app.studies.service import definition_of
from tests.consent.test_consent import SLUG, definition, document
from tests.console.conftest import ORIGIN, Browser, csrf_of, link_for
from tests.helpers import Api, bearer, enrollment, study_today

C = f"/console/studies/{SLUG}"
S = f"/api/v1/studies/{SLUG}"


@dataclass
class Env:
    api: Api
    db: Database
    client: TestClient

    def browser(self, role: str, *sites: str) -> Browser:
        email = f"{role}-{len(sites)}-{id(self)}-{datetime.now(UTC).timestamp()}@example.org"
        self.api.user(role, *sites, study=SLUG, email=email)
        browser = Browser(self.client, email)
        assert browser.open_link(link_for(self.db, email)).status_code == 303
        return browser

    def enroll(self, site: str = "PHL") -> tuple[str, int]:
        body = enrollment(site, contact={"name": "Ana", "email": "ana@example.org"})
        made = self.client.post(
            f"{S}/participants", json=body, headers=bearer(self.api.admin_token)
        )
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        with self.db.begin() as session:
            pid = session.scalars(select(Participant.id).where(Participant.code == code)).one()
        return code, pid

    def sign(self, pid: int, version: str = "1.0") -> int:
        with self.db.begin() as session:
            study = session.scalars(select(Study).where(Study.slug == SLUG)).one()
            doc = definition_of(study).consent.document(version)
            assert doc is not None
            participant = session.get_one(Participant, pid)
            consent = consents.sign_electronic(
                session,
                study=study,
                site_id=participant.site_id,
                document=doc,
                language="es",
                typed_name="José Núñez",
                quiz_answers={"leave": "yes"},
                quiz_attempts=1,
                participant_id=pid,
                email="ana@example.org",
                now=datetime.now(UTC),
            )
            consents.note_current_version(session, participant=participant)
            return consent.id


@pytest.fixture(scope="module")
def env(module_settings: Settings) -> Iterator[Env]:
    settings = module_settings  # a copy of the template per backend, for the module
    db = Database(settings)
    with db.begin() as session:
        loaded = load_demo(session)
    with TestClient(create_app(settings)) as client:
        admin = bearer(loaded.token)
        assert client.post("/api/v1/studies", json=definition(), headers=admin).status_code == 201
        for site in ("PHL", "PIT"):
            made = client.post(f"{S}/sites", json={"code": site, "name": site}, headers=admin)
            assert made.status_code == 201, made.text
        assert client.post(f"{S}/activate", headers=admin).status_code == 200
        yield Env(Api(client, admin_token=loaded.token), db, client)
    db.dispose()


def _section(html: str) -> str:
    start = html.index('id="consents-heading"')
    return html[start : html.index("</section>", start)]


def _audited(env: Env, action: str, entity: int) -> int:
    with env.db.session(write=False) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AuditRecord)
                .where(AuditRecord.action == action, AuditRecord.entity_id == str(entity))
            )
            or 0
        )


def test_the_record_lists_consents_with_their_copy_and_countersignature(env: Env) -> None:
    coordinator = env.browser("coordinator", "PHL")
    code, pid = env.enroll()
    consent_id = env.sign(pid)
    page = f"{C}/participants/{code}"
    section = _section(coordinator.get(page).text)
    in_person, electronic = section.split("<tr>")[2:4]
    assert "In person" in in_person and "obtained by admin" in in_person  # the enroller
    assert "Replaced by a later consent" in in_person and ".pdf" not in in_person
    with env.db.session(write=False) as session:
        sha = session.get_one(Consent, consent_id).document_sha256
    assert (
        sha
        and f"SHA-256 {sha[:12]}…" in electronic
        and f'<code class="path">{sha}</code>' in electronic
    )
    assert "Español (es)" in electronic and ">Signed</strong>" in electronic
    pdf = coordinator.get(f"{page}/consents/{consent_id}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["cache-control"] == "no-store"
    assert _audited(env, "consent.pdf_read", consent_id) == 1
    assert (
        coordinator.get(
            f"{page}/consents/{consent_id}.pdf", headers={"Sec-Fetch-Site": "cross-site"}
        ).status_code
        == 403
    )

    action = f"{page}/consents/{consent_id}/countersign"
    assert f'action="{action}"' in electronic
    done = coordinator.post(action, csrf_from=page)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=countersigned")
    after = coordinator.get(done.headers["location"]).text
    assert "The consent is countersigned." in after
    assert "Signed and countersigned" in _section(after) and f'action="{action}"' not in after
    again = coordinator.post(action, csrf_from=page)
    assert again.status_code == 409 and "countersigned already" in again.text
    forged = coordinator.client.post(action, data={"csrf_token": "x"}, headers=ORIGIN)
    assert forged.status_code == 403


def test_only_consent_managers_of_the_site_see_consents(env: Env) -> None:
    code, pid = env.enroll()
    consent_id = env.sign(pid)
    other = env.browser("coordinator", "PIT")
    assert other.get(f"{C}/participants/{code}/consents/{consent_id}.pdf").status_code == 404
    statistician = env.browser("statistician")
    assert statistician.get(f"{C}/participants/{code}/consents/{consent_id}.pdf").status_code == 403
    assert statistician.get(f"{C}/consents/outstanding").status_code == 403
    assert "/consents/outstanding" not in statistician.get(f"{C}/reports").text


def test_a_consent_taken_in_person_is_recorded_by_whoever_obtained_it(env: Env) -> None:
    coordinator = env.browser("coordinator", "PHL")
    code, pid = env.enroll()
    page = f"{C}/participants/{code}"
    action = f"{page}/consents"
    tomorrow = (study_today() + timedelta(days=1)).isoformat()
    for sent, fields in (
        (
            {"version": "", "obtained_on": "3 March", "note": "x" * 2001},
            ("version", "obtained_on", "note"),
        ),
        ({"version": "9.9", "obtained_on": tomorrow}, ("version", "obtained_on")),
    ):
        refused = coordinator.post(action, sent, csrf_from=page)
        assert refused.status_code == 422
        assert "<title>Error: " in refused.text and "There is a problem" in refused.text
        for field in fields:
            assert f'href="#{field}"' in refused.text, (sent, field)
    with env.db.session(write=False) as session:
        assert len(consents.consents_of(session, participant_id=pid)) == 1
    day = (study_today() - timedelta(days=3)).isoformat()
    done = coordinator.post(
        action, {"version": "1.0", "obtained_on": day, "note": "Re-read on paper"}, csrf_from=page
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?done=consent_recorded")
    with env.db.session(write=False) as session:
        latest = consents.consents_of(session, participant_id=pid)[-1]
        assert latest.obtained_on == date.fromisoformat(day) and latest.method == "in_person"
    assert "obtained by coordinator-1-" in _section(coordinator.get(page).text)


def test_the_enroll_form_asks_the_day_consent_was_taken(env: Env) -> None:
    coordinator = env.browser("coordinator", "PHL")
    form = coordinator.get(f"{C}/enroll").text
    assert re.search(r'name="consent-obtained_on" type="date" value="\d{4}-\d\d-\d\d"', form)
    answers = {
        "site": "PHL",
        "screening-age_18_plus": "yes",
        "screening-smi_diagnosis": "yes",
        "screening-internet_access": "yes",
        "consent": "1.0",
        "strata-diagnosis": "bipolar",
        "contact-name": "Ann Example",
    }
    future = (study_today() + timedelta(days=1)).isoformat()
    fields = {"csrf_token": csrf_of(form), "form_id": "f-" + future, **answers}
    refused = coordinator.client.post(
        f"{C}/enroll", data={**fields, "consent-obtained_on": future}, headers=ORIGIN
    )
    assert refused.status_code == 422 and 'href="#consent-obtained_on"' in refused.text
    day = (study_today() - timedelta(days=5)).isoformat()
    made = coordinator.client.post(
        f"{C}/enroll", data={**fields, "form_id": "g-1", "consent-obtained_on": day}, headers=ORIGIN
    )
    assert made.status_code == 303, made.text
    code = re.search(r"/participants/([\w-]+)\?", made.headers["location"]).group(1)  # type: ignore[union-attr]
    with env.db.session(write=False) as session:
        pid = session.scalars(select(Participant.id).where(Participant.code == code)).one()
        [consent] = consents.consents_of(session, participant_id=pid)
        assert consent.obtained_on == date.fromisoformat(day)


def test_an_amendment_pasted_by_an_admin_asks_everyone_to_re_consent(env: Env) -> None:
    code, _ = env.enroll("PHL")
    env.enroll("PIT")
    admin = env.browser("admin")
    setup = f"{C}/setup"
    page = admin.get(setup).text
    assert "Consent versions" in page and '<th scope="row">1.0</th><td>en, es</td>' in page
    with env.db.session(write=False) as session:
        revision = session.scalars(select(Study.revision).where(Study.slug == SLUG)).one()

    english_only = document("2.0", languages=("en",))
    bad = english_only | {"texts": {**english_only["texts"], "en": {"title": ""}}}
    import json

    for pasted, expected in (
        ("version: [", "The text"),
        (json.dumps(english_only), "texts"),
        (json.dumps(bad), "texts.en"),
        ("version: '1.0'\ntexts: {}", "version"),
    ):
        refused = admin.post(f"{setup}/consent-versions", {"document": pasted}, csrf_from=setup)
        assert refused.status_code == 422, (pasted, refused.text)
        assert "<title>Error: " in refused.text and "There is a problem" in refused.text
        assert expected in refused.text, (pasted, expected)
    too_big = admin.post(f"{setup}/consent-versions", {"document": "a" * 210_000}, csrf_from=setup)
    assert too_big.status_code == 422 and "200 KB or less" in too_big.text
    with env.db.session(write=False) as session:
        assert session.scalars(select(Study.revision).where(Study.slug == SLUG)).one() == revision

    done = admin.post(
        f"{setup}/consent-versions", {"document": json.dumps(document("2.0"))}, csrf_from=setup
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?done=amended")
    shown = admin.get(done.headers["location"]).text
    assert '<th scope="row">2.0</th><td>en, es</td><td>Yes</td>' in shown

    coordinator = env.browser("coordinator", "PHL")
    worklist = coordinator.get(f"{C}/worklist").text
    assert f'href="{C}/consents/outstanding"' in worklist  # the navigation and the count
    count = re.search(
        r"(\d+) participants? at your sites (?:has|have) not consented to version 2.0", worklist
    )
    assert count, worklist
    outstanding = coordinator.get(f"{C}/consents/outstanding").text
    assert f">{code}</a>" in outstanding and "PIT" not in outstanding.split("<tbody>")[1]
    assert outstanding.count("<tr><td>") == int(count.group(1))
    assert "Needs re-consent to the new version" in _section(
        coordinator.get(f"{C}/participants/{code}").text
    )
