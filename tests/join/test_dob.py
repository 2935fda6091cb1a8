"""The date-of-birth re-check at a self-enrolled participant's first survey, and the
call flag after a failed consent quiz, through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit.models import AuditRecord
from app.config import Settings
from app.db.engine import Database
from app.demo import demo_definition, load_demo
from app.join.models import Applicant
from app.main import create_app
from app.participants.models import Participant
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from tests.console.conftest import Browser, link_for
from tests.helpers import study_today
from tests.join.test_flow import CONSENT, DOC, ELIGIBLE, _stamp

SLUG = "join-dob"


@pytest.fixture(scope="module")
def app_parts(module_settings: Settings) -> Iterator[tuple[TestClient, Database, str]]:
    db = Database(module_settings)
    with db.begin() as session:
        token = load_demo(session).token
        document: dict[str, Any] = demo_definition() | {
            "slug": SLUG,
            "languages": ["en"],
            "translations": {},
            "consent_versions": ["1.0"],
            "consent": CONSENT,
            "join": {"enabled": True, "sites": ["PHL"], "ask_date_of_birth": True},
        }
        study = studies.create_study(
            session, definition=StudyDefinition.model_validate(document), actor=None
        )
        studies.add_site(session, study=study, code="PHL", name="Philadelphia", actor=None)
        studies.activate_study(session, study=study, actor=None)
    with TestClient(create_app(module_settings), client=("203.0.113.7", 5000)) as client:
        yield client, db, token
    db.dispose()


def _sign_up(client: TestClient, db: Database, name: str, email: str) -> str:
    """Screen, give contact details born 27 March 1990, consent: the baseline's link."""
    body = {**ELIGIBLE, "s-diagnosis": "bipolar", "shown": _stamp(db, slug=SLUG), "website": ""}
    contact = client.post(f"/join/{SLUG}", data=body, follow_redirects=False)
    base = contact.headers["location"].rsplit("/", 1)[0]
    born = {"dob-day": "27", "dob-month": "3", "dob-year": "1990"}
    client.post(f"{base}/contact", data={"name": name, "email": email, **born})
    client.post(
        f"{base}/sign",
        data={
            "step": "sign",
            "document": DOC,
            "q-leave": "yes",
            "typed_name": name,
            "agree": "yes",
        },
    )
    done = client.get(f"{base}/done").text
    return re.search(r'href="(/s/[\w-]+)"', done)[1]  # type: ignore[index]


def _state(db: Database, email_name: str) -> tuple[str | None, bool, int]:
    with db.session(write=False) as session:
        applicant = next(a for a in session.scalars(select(Applicant)) if a.name == email_name)
        participant = session.get_one(Participant, applicant.participant_id)
        audited = session.scalars(
            select(AuditRecord).where(
                AuditRecord.action == "participant.date_of_birth_checked",
                AuditRecord.entity_id == participant.code,
            )
        ).all()
        return applicant.date_of_birth_check, participant.needs_verification, len(audited)


def _verify(client: TestClient, db: Database, admin: str, name: str) -> None:
    with db.session(write=False) as session:
        applicant = next(a for a in session.scalars(select(Applicant)) if a.name == name)
        code = session.get_one(Participant, applicant.participant_id).code
    verified = client.post(
        f"/api/v1/studies/{SLUG}/participants/{code}/verify",
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert verified.status_code == 200, verified.text


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "email", "typed", "outcome"),
    [
        ("Ana Match", "ana.match@example.org", ("27", "03", "1990"), "matched"),
        ("Bo Mismatch", "bo.mismatch@example.org", ("28", "3", "1990"), "mismatched"),
    ],
)
def test_the_first_survey_asks_the_date_of_birth_once_and_never_tells(  # type: ignore[no-untyped-def]
    app_parts, name, email, typed, outcome
):
    client, db, admin = app_parts
    link = _sign_up(client, db, name, email)
    _verify(client, db, admin, name)  # the diagnosis checked: only the date can hold it now
    asked = client.get(link)
    assert asked.status_code == 200 and "To check it is you: your date of birth" in asked.text
    assert asked.headers["referrer-policy"] == "no-referrer"
    # Skipping it is not possible: answers posted first go back to the question.
    skipped = client.post(
        link, data={"csrf_token": _csrf(asked.text), "part": "1"}, follow_redirects=False
    )
    assert skipped.status_code == 303 and skipped.headers["location"] == link
    step = {"csrf_token": _csrf(asked.text), "step": "date-of-birth"}
    wrong = client.post(link, data=step | {"dob-day": "31", "dob-month": "2", "dob-year": "1990"})
    assert wrong.status_code == 422 and "<title>Error: " in wrong.text
    assert "Date of birth must be a real date" in wrong.text and 'href="#dob-day"' in wrong.text
    assert _state(db, name) == (None, False, 0)  # nothing kept from a wrong date
    day, month, year = typed
    sent = client.post(
        link,
        data=step | {"dob-day": day, "dob-month": month, "dob-year": year},
        follow_redirects=False,
    )
    # The same answer either way: on to the survey.
    assert sent.status_code == 303 and sent.headers["location"] == link
    survey = client.get(link)
    assert survey.status_code == 200 and "date of birth" not in survey.text
    assert _state(db, name) == (outcome, outcome == "mismatched", 1)
    # Asked once: sending it again changes nothing.
    client.post(link, data=step | {"dob-day": "1", "dob-month": "1", "dob-year": "1970"})
    assert _state(db, name) == (outcome, outcome == "mismatched", 1)


def test_a_failed_quiz_twice_shows_as_a_call_on_the_worklist_until_marked_done(app_parts):  # type: ignore[no-untyped-def]
    client, db, admin = app_parts
    body = {**ELIGIBLE, "s-diagnosis": "bipolar", "shown": _stamp(db, slug=SLUG), "website": ""}
    base = client.post(f"/join/{SLUG}", data=body).url.path.rsplit("/", 1)[0]
    born = {"dob-day": "1", "dob-month": "2", "dob-year": "1980"}
    client.post(f"{base}/contact", data={"name": "Cy Call", "email": "cy@example.org", **born})
    for _ in range(2):
        client.post(f"{base}/quiz", data={"q-leave": "no"})
    email = "dob-coordinator@example.org"
    client.post(
        "/api/v1/users",
        json={
            "email": email,
            "name": "C",
            "role": "coordinator",
            "sites": [{"study": SLUG, "site": "PHL"}],
        },
        headers={"Authorization": f"Bearer {admin}"},
    )
    browser = Browser(client, email)
    assert browser.open_link(link_for(db, email)).status_code == 303
    worklist = f"/console/studies/{SLUG}/worklist"
    shown = browser.get(worklist).text
    assert "call to go over the consent" in shown
    action = re.search(r'action="([^"]+/calls/applicant/\d+/done)"', shown)[1]  # type: ignore[index]
    assert browser.post(action, csrf_from=worklist).status_code == 303
    assert "call to go over the consent" not in browser.get(worklist).text
    with db.session(write=False) as session:
        applicant = next(a for a in session.scalars(select(Applicant)) if a.name == "Cy Call")
        assert not applicant.needs_call
        done = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "consent.call_done")
        ).all()
        assert [r.entity_id for r in done] == [f"applicant:{applicant.id}"]
    # Another user's browser cannot clear someone else's: an unknown kind is 404.
    assert (
        browser.post(action.replace("applicant", "nobody"), csrf_from=worklist).status_code == 404
    )


def test_a_date_of_birth_after_the_studys_today_is_refused(app_parts):  # type: ignore[no-untyped-def]
    """The sign-up bounds a date of birth by the study's today, as the survey's re-check
    does: from midnight UTC until New York's, the UTC date is New York's tomorrow."""
    client, db, _ = app_parts
    body = {**ELIGIBLE, "s-diagnosis": "bipolar", "shown": _stamp(db, slug=SLUG), "website": ""}
    contact = client.post(f"/join/{SLUG}", data=body, follow_redirects=False)
    base = contact.headers["location"].rsplit("/", 1)[0]
    day = study_today() + timedelta(days=1)
    born = {"dob-day": str(day.day), "dob-month": str(day.month), "dob-year": str(day.year)}
    sent = {"name": "Di Early", "email": "di.early@example.org", **born}
    refused = client.post(f"{base}/contact", data=sent)
    assert refused.status_code == 422 and "Date of birth must be in the past" in refused.text
