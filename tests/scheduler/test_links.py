"""A new survey link reaches the participant, a queued message is never doubled, and
what participants receive names the study as they are shown it (issue 14)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from app.db.base import utcnow
from app.demo import demo_definition
from app.outbox.models import MessageKind, MessageStatus, OutboxMessage
from app.scheduler import planner
from app.scheduler.dispatch import Claimed, compose
from app.scheduler.mail import Letter
from app.scheduler.runner import run_pass
from app.studies.models import Study
from tests.helpers import STUDY, bearer
from tests.live import running_servers
from tests.smtp import Inbox, body, smtp_server

LINK = re.compile(r"http://testserver(/s/[\w-]+)")
PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _enroll(api, coordinator: str, email: str | None, study: str = STUDY) -> str:
    contact = {"name": "Ann Example", **({"email": email} if email else {})}
    return api.enroll(coordinator, study=study, contact=contact)


def _reissue(api, token: str, code: str) -> dict:
    answer = api.client.post(
        f"{PARTICIPANTS}/{code}/surveys/baseline/reissue", headers=bearer(token)
    )
    assert answer.status_code == 200, answer.text
    result: dict = answer.json()
    return result


def _queue_owed(db, slug: str = STUDY) -> int:
    """The scheduler's planning half alone: the invitations owed, queued and not sent."""
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == slug)).one()
        rows = planner.owed_surveys(session, study=study, now=utcnow(), limit=100)
        return planner.enqueue(session, study=study, now=utcnow(), rows=rows)


def _messages(db) -> list[OutboxMessage]:
    with db.session(write=False) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_new_link_is_emailed_and_the_old_links_page_says_so(api, mailer, inbox):
    coordinator = api.user("coordinator", "PHL")
    code = _enroll(api, coordinator, "ann@example.org")
    assert run_pass(mailer).sent == 1  # the invitation, with the first link
    old = api.survey_token(code)
    answer = _reissue(api, coordinator, code)
    assert answer["emailed"] is True
    new = answer["link"].rsplit("/", 1)[1]
    assert run_pass(mailer).sent == 1
    _invitation, renewed = inbox.to("ann@example.org")
    assert renewed["Subject"].startswith("Your new survey link")
    [path] = LINK.findall(body(renewed))
    assert path == f"/s/{new}" and old not in body(renewed)
    assert api.client.get(path).status_code == 200
    gone = api.client.get(f"/s/{old}")
    assert gone.status_code == 410 and "We sent you a newer link" in gone.text
    [*_, last] = _messages(mailer)
    assert (last.kind, last.status) == (MessageKind.link_reissued, MessageStatus.sent)


def test_a_queued_invitation_gives_way_to_the_new_links_email(api, mailer, inbox):
    coordinator = api.user("coordinator", "PHL")
    code = _enroll(api, coordinator, "ann@example.org")
    assert _queue_owed(mailer) == 1  # queued with the first link's survey, not sent yet
    new = _reissue(api, coordinator, code)["link"].rsplit("/", 1)[1]
    assert run_pass(mailer).sent == 1
    [email] = inbox.to("ann@example.org")  # one email, not the invitation and this
    assert LINK.findall(body(email)) == [f"/s/{new}"]
    queued, renewed = _messages(mailer)
    assert (queued.status, renewed.status) == (MessageStatus.skipped, MessageStatus.sent)
    # A message is written when sent: the one queued before would carry the new link.
    with mailer.session(write=False) as session:
        letter = compose(
            session,
            mailer.settings,
            Claimed(queued.id, MessageKind(queued.kind), queued.subject_id, 0),
            now=utcnow(),
        )
    assert isinstance(letter, Letter) and f"/s/{new}" in letter.body


def test_without_an_email_address_the_new_link_is_not_sent_and_that_is_said(api, mailer):
    coordinator = api.user("coordinator", "PHL")
    code = _enroll(api, coordinator, None)
    old = api.survey_token(code)
    answer = _reissue(api, coordinator, code)
    assert answer["emailed"] is False and answer["link"]
    shown = api.client.get(f"/api/v1/studies/{STUDY}/messages", headers=bearer(coordinator))
    assert shown.status_code == 200
    assert [m["kind"] for m in shown.json()["items"]] == ["link_reissued"]
    gone = api.client.get(f"/s/{old}")
    assert gone.status_code == 410
    assert "We sent you" not in gone.text and "contact the study team" in gone.text
    support = demo_definition().get("support_text")
    if support:
        assert support.split()[0] in gone.text


def test_a_resend_while_a_message_is_queued_adds_none(api, mailer, inbox):
    coordinator = api.user("coordinator", "PHL")
    code = _enroll(api, coordinator, "ann@example.org")
    assert _queue_owed(mailer) == 1
    resend = f"{PARTICIPANTS}/{code}/surveys/baseline/resend"
    for _ in range(3):
        assert api.client.post(resend, headers=bearer(coordinator)).status_code == 202
    assert len(_messages(mailer)) == 1
    assert run_pass(mailer).sent == 1
    assert len(inbox.to("ann@example.org")) == 1
    # Once sent, a resend is a new email.
    assert api.client.post(resend, headers=bearer(coordinator)).status_code == 202
    assert run_pass(mailer).sent == 1
    assert len(inbox.to("ann@example.org")) == 2


@pytest.mark.slow
def test_resends_racing_the_scheduler_on_a_real_server_send_one_email(api, settings, db):
    """Eight resends through two server processes and the scheduler's pass, all at once,
    before anything is sent: one message is queued, one email arrives. (A resend after
    the email left is a new one, as the test above shows.)"""
    coordinator = api.user("coordinator", "PHL")
    code = _enroll(api, coordinator, "ann@example.org")
    env = {"TRIALDESK_DATABASE_URL": settings.database_url, "TRIALDESK_BASE_URL": "http://x"}
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    inbox = Inbox()
    start = threading.Barrier(9)

    def resend(base: str) -> int:
        with httpx.Client(base_url=base, timeout=60) as client:
            start.wait()
            path = f"{PARTICIPANTS}/{code}/surveys/baseline/resend"
            return client.post(path, headers=bearer(coordinator)).status_code

    def scheduler_plans() -> int:  # the scheduler's half that queues what is owed
        start.wait()
        return _queue_owed(db)

    with smtp_server(inbox) as port, running_servers(env, count=2) as bases:
        mailer = db.__class__(
            settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
        )
        try:
            with ThreadPoolExecutor(9) as pool:
                answers = [pool.submit(resend, bases[n % 2]) for n in range(8)]
                planned = pool.submit(scheduler_plans)
                statuses = [a.result() for a in answers]
                planned.result()
            assert run_pass(mailer).sent == 1  # the one message queued, whoever queued it
        finally:
            mailer.dispose()
    assert statuses == [202] * 8
    assert len(inbox.to("ann@example.org")) == 1
    assert [m.status for m in _messages(db)] == [MessageStatus.sent]


def test_participant_emails_name_the_study_as_participants_are_shown_it(api, mailer, inbox):
    admin = bearer(api.admin_token)
    document = demo_definition() | {
        "slug": "quiet",
        "code_prefix": "QT",
        "title": "Peer support for serious mental illness",
        "participant_title": "The Wellbeing Study",
    }
    assert api.client.post("/api/v1/studies", json=document, headers=admin).is_success
    site = {"code": "PHL", "name": "Philadelphia"}
    assert api.client.post("/api/v1/studies/quiet/sites", json=site, headers=admin).is_success
    assert api.client.post("/api/v1/studies/quiet/activate", headers=admin).status_code == 200
    coordinator = api.user("coordinator", "PHL", study="quiet")
    code = _enroll(api, coordinator, "ann@example.org", study="quiet")
    run_pass(mailer)
    answer = api.client.post(
        f"/api/v1/studies/quiet/participants/{code}/surveys/baseline/reissue",
        headers=bearer(coordinator),
    )
    assert answer.json()["emailed"] is True
    run_pass(mailer)
    emails = inbox.to("ann@example.org")
    assert len(emails) == 2
    for email in emails:
        assert "The Wellbeing Study" in email["Subject"] + body(email)
        assert "mental illness" not in email["Subject"] + body(email)


def test_the_worklist_lists_failed_emails_of_the_users_sites_only(api, mailer):
    from app.auth.principal import Principal, Role
    from app.studies.models import Site
    from app.surveys import worklist

    phl = api.user("coordinator", "PHL")
    code = _enroll(api, phl, None)
    assert _reissue(api, phl, code)["emailed"] is False
    with mailer.session(write=False) as session:
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        sites = {s.code: s.id for s in session.scalars(select(Site))}

        def failed_for(*codes: str) -> list[str]:
            user = Principal(1, "c@x", Role.coordinator, frozenset(sites[c] for c in codes))
            found = worklist.worklist(
                session, study=study, user=user, wanted=None, after_id=0, limit=10, now=utcnow()
            )
            assert found.messages_failed == len(found.failed_emails)
            return [m.participant_code for m in found.failed_emails]

        assert failed_for("PHL") == [code]
        assert failed_for(*(c for c in sites if c != "PHL")) == []
