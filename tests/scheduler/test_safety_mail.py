"""The serious-adverse-event email (SPEC 9), through a real SMTP server (aiosmtpd, in
this process): to the study's safety contacts and safety reviewers (else its admins),
with a link to the console and no health detail."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import service as auth
from app.db.base import utcnow
from app.demo import DEMO_ADMIN_EMAIL, demo_definition, load_demo
from app.main import create_app
from app.outbox import service as outbox
from app.outbox.models import MessageKind
from app.scheduler.mail import SAFETY_EVENT_SUBJECT
from app.scheduler.runner import PassReport, run_pass
from app.studies import service as studies
from app.studies.models import Study
from app.studies.validation import parse_definition
from tests.helpers import BASELINE_ANSWERS, STUDY, Api, bearer
from tests.smtp import body

CONTACT = "safety@demo.trialdesk.org"  # the demo study's safety contact
TERM = "Overdose of lithium, admitted to hospital"
# What a serious event's version says: none of it may reach the email.
SERIOUS = {
    "AETERM": TERM,
    "AESTDTC": "2026-12-01",
    "AESEV": "severe",
    "AESER": True,
    "AESHOSP": True,
    "AESLIFE": True,
    "AEREL": "not_related",
    "AEEXPECT": False,
    "AEOUT": "recovering",
    "AEACN": "none",
    "aware_on": "2026-12-02",
    "note": "Found by her sister; taken to the emergency department",
}
HEALTH_WORDS = re.compile(r"overdose|lithium|hospital|emergency|sister|AES|AETERM|severe", re.I)


def _serious_event(api, token: str, *, code: str, study: str = STUDY) -> int:
    """Open a serious event of the participant through the API (which queues its
    email); the event's id."""
    opened = api.client.post(
        f"/api/v1/studies/{study}/participants/{code}/events", json=SERIOUS, headers=bearer(token)
    )
    assert opened.status_code == 201, opened.text
    event_id: int = opened.json()["id"]
    return event_id


def _enqueue(session, *, event_id: int, study_id: int, site_id: int) -> None:
    assert outbox.enqueue(
        session,
        kind=MessageKind.safety_event,
        dedupe_key=f"safety_event:{event_id}",
        subject_id=event_id,
        study_id=study_id,
        site_id=site_id,
        now=utcnow(),
    )


def _recipients(message: EmailMessage) -> list[str]:
    addresses: tuple[Address, ...] = message["To"].addresses
    return [a.addr_spec for a in addresses]


def _deactivate(api, token: str) -> None:
    me = api.client.get("/api/v1/users/me", headers=bearer(token)).json()
    gone = api.client.post(
        f"/api/v1/users/{me['id']}/deactivate",
        json={"reason": "left the study"},
        headers=bearer(api.admin_token),
    )
    assert gone.status_code == 200, gone.text


def test_a_serious_event_is_emailed_to_the_contacts_and_reviewers_without_health_details(
    api, mailer, inbox
):
    api.user("safety_reviewer", email="reviewer@example.org")
    api.user("safety_reviewer", email="SAFETY@demo.trialdesk.org")  # a contact too: once
    _deactivate(api, api.user("safety_reviewer", email="former@example.org"))
    api.user("coordinator", "PHL", email="phl-coordinator@example.org")  # not emailed
    contact = {"name": "Ann Example", "email": "ann@example.org"}
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator, contact=contact)
    _serious_event(api, coordinator, code=code)  # AE-1
    event_id = _serious_event(api, coordinator, code=code)  # AE-2

    assert run_pass(mailer) == PassReport(enqueued=1, sent=3, failed=0, skipped=0)
    [message] = [m for m in inbox.messages if "AE-2" in body(m)]
    assert _recipients(message) == [CONTACT, "reviewer@example.org"]
    assert message["Subject"] == SAFETY_EVENT_SUBJECT
    text = body(message)
    assert "AE-2" in text and "site PHL" in text
    assert f"http://testserver/console/studies/{STUDY}/events/{event_id}" in text
    for shown in (message["Subject"], text):
        assert code not in shown and "Ann" not in shown and "ann@" not in shown
        assert not HEALTH_WORDS.search(shown), shown
    assert run_pass(mailer).sent == 0  # once


def test_a_study_without_contacts_or_reviewers_emails_its_admins(api, mailer, db, inbox):
    other = api.user("admin", email="second-admin@example.org")
    _deactivate(api, api.user("admin", email="former-admin@example.org"))
    document = demo_definition()
    document.update(slug="quiet-study", safety={"contacts": []})
    with db.begin() as session:
        admin = auth.find_user(session, email=DEMO_ADMIN_EMAIL)
        assert admin is not None
        actor = auth.principal_of(admin)
        study = studies.create_study(session, definition=parse_definition(document), actor=actor)
        studies.add_site(session, study=study, code="BOS", name="Boston", actor=actor)
        studies.activate_study(session, study=study, actor=actor)
    code = api.enroll(other, study="quiet-study", site="BOS")
    _serious_event(api, other, code=code, study="quiet-study")

    assert run_pass(mailer).sent == 2  # the invitation, and the event's email
    [message] = [m for m in inbox.messages if m["Subject"] == SAFETY_EVENT_SUBJECT]
    assert _recipients(message) == [DEMO_ADMIN_EMAIL, "second-admin@example.org"]
    assert "AE-1" in body(message) and "site BOS" in body(message)


def test_an_email_about_an_event_that_no_longer_exists_is_shown_as_failed(api, mailer, db, inbox):
    coordinator = api.user("coordinator", "PHL")
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        _enqueue(session, event_id=999_999, study_id=study.id, site_id=study.sites[0].id)

    assert run_pass(mailer) == PassReport(enqueued=0, sent=0, failed=1, skipped=0)
    assert inbox.messages == []
    shown = api.client.get(f"/api/v1/studies/{STUDY}/messages", headers=bearer(coordinator))
    [failed] = shown.json()["items"]
    assert failed["kind"] == "safety_event" and failed["status"] == "failed"
    assert "adverse event no longer exists" in failed["last_error"]


def test_an_alert_is_sent_at_once_not_at_the_schedulers_next_pass(settings, db, inbox):
    """The in-server scheduler, an hour between passes: a survey's safety alert wakes it."""
    with db.begin() as session:
        token = load_demo(session).token
    server = settings.model_copy(
        update={
            "scheduler": True,
            "scheduler_interval_s": 3600,
            "smtp_host": "127.0.0.1",
            "smtp_port": inbox.port,
        }
    )
    with TestClient(create_app(server)) as client:
        api = Api(client, admin_token=token)
        api.user("coordinator", "PHL", email="phl-coordinator@example.org")
        code = api.enroll(api.admin_token, contact={"name": "Ann Example"})
        api.complete_survey(code, answers={**BASELINE_ANSWERS, "phq9_9": 2})
        assert inbox.received.wait(timeout=60), "the alert waited for the next pass"
    [alert] = inbox.messages
    assert alert["To"] == "phl-coordinator@example.org" and code in alert["Subject"]
