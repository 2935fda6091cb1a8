"""Invitations, reminders and alerts through a real SMTP server (aiosmtpd, in this
process), from scheduler passes run in this process and in two processes at once."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.db.base import utcnow
from app.db.engine import Database
from app.outbox.models import MessageStatus, OutboxMessage
from app.outbox.retry import FIRST_WAIT, MAX_ATTEMPTS
from app.scheduler import planner
from app.scheduler.runner import PassReport, run_pass
from app.studies.models import Study
from tests.helpers import STUDY, bearer, study_noon
from tests.live import PROJECT_ROOT, free_port, running_servers
from tests.smtp import Inbox, body, smtp_server

NOTHING = PassReport(enqueued=0, sent=0, failed=0, skipped=0)
LINK = re.compile(r"(http://testserver)(/s/[\w-]+)")


def _mailer(settings, **changes) -> Database:
    return Database(settings.model_copy(update=changes))


def _enroll(api, email: str | None, site: str = "PHL") -> str:
    contact = {"name": "Ann Example", **({"email": email} if email else {})}
    coordinator = api.user("coordinator", site)
    return api.enroll(coordinator, **{"contact": contact, "site": site})


def _messages(api, token: str | None = None) -> list[dict]:
    headers = bearer(token or api.admin_token)
    shown = api.client.get(f"/api/v1/studies/{STUDY}/messages", headers=headers)
    assert shown.status_code == 200, shown.text
    items: list[dict] = shown.json()["items"]
    return items


def test_the_invitation_arrives_and_its_link_opens_the_survey(api, mailer, inbox):
    _enroll(api, "ann@example.org")
    assert run_pass(mailer) == PassReport(enqueued=1, sent=1, failed=0, skipped=0)
    [message] = inbox.to("ann@example.org")
    assert message["Subject"].startswith("Your survey is ready")
    text = body(message)
    found = LINK.search(text)
    assert found, text
    page = api.client.get(found.group(2))  # the study's intro page, then the first part
    assert page.status_code == 200 and "Start the survey" in page.text
    assert "Part 1 of 2" in api.client.get(found.group(2), params={"part": "1"}).text
    assert run_pass(mailer) == NOTHING  # sent once, however many passes


def test_reminders_come_on_the_reminder_days_and_stop_after_submission(api, mailer, inbox):
    code = _enroll(api, "ann@example.org")
    assert run_pass(mailer, now=utcnow()).sent == 1
    # The reminder days are study dates: the passes run at noon of the days meant.
    assert run_pass(mailer, now=study_noon(2)) == NOTHING
    assert run_pass(mailer, now=study_noon(3)).sent == 1
    assert inbox.to("ann@example.org")[-1]["Subject"].startswith("Reminder:")
    api.complete_survey(code)
    assert run_pass(mailer, now=study_noon(7)) == NOTHING
    assert len(inbox.to("ann@example.org")) == 2


def test_after_a_scheduler_outage_one_message_goes_not_every_one_missed(api, mailer, inbox):
    _enroll(api, "ann@example.org")
    assert run_pass(mailer, now=study_noon(8)).sent == 1  # both reminder days past
    [message] = inbox.to("ann@example.org")
    assert message["Subject"].startswith("Your survey is ready")  # the invitation first
    assert run_pass(mailer, now=study_noon(9)) == NOTHING


def test_a_reminder_waiting_when_the_survey_is_submitted_is_not_sent(api, mailer, inbox):
    code = _enroll(api, "ann@example.org")
    run_pass(mailer, now=utcnow())
    later = study_noon(3)  # the first reminder's study date
    with mailer.begin() as session:  # the reminder is queued ...
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        rows = planner.owed_surveys(session, study=study, now=later, limit=10)
        assert planner.enqueue(session, study=study, now=later, rows=rows) == 1
    api.complete_survey(code)  # ... and the survey is submitted before it goes
    assert run_pass(mailer, now=later) == PassReport(enqueued=0, sent=0, failed=0, skipped=1)
    assert len(inbox.to("ann@example.org")) == 1


def test_no_message_after_a_withdrawal_or_once_the_window_has_closed(api, mailer, inbox):
    withdrawn = _enroll(api, "gone@example.org")
    _enroll(api, "late@example.org")
    coordinator = api.user("coordinator", "PHL")
    api.client.post(
        f"/api/v1/studies/{STUDY}/participants/{withdrawn}/withdraw",
        json={"reason": "moved away"},
        headers=bearer(coordinator),
    )
    assert run_pass(mailer, now=utcnow() + timedelta(days=60)) == NOTHING
    assert inbox.messages == []


SLACK = timedelta(seconds=30)


def test_a_refused_message_is_retried_with_backoff_then_shown_as_failed(api, mailer, inbox):
    inbox.refuse.add("refused@example.org")
    code = _enroll(api, "refused@example.org")
    at = utcnow()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert run_pass(mailer, now=at).failed == 1, attempt
        wait = FIRST_WAIT * 2 ** (attempt - 1)
        assert run_pass(mailer, now=at + wait - timedelta(seconds=1)) == NOTHING  # backing off
        at += wait + SLACK  # the pass's clock ran on a little while it sent
    assert run_pass(mailer, now=at + timedelta(hours=3)) == NOTHING  # given up
    coordinator = api.user("coordinator", "PHL")
    [failed] = _messages(api, coordinator)
    assert failed["participant"] == code and failed["status"] == "failed"
    assert failed["attempts"] == MAX_ATTEMPTS and "550" in failed["last_error"]
    worklist = api.client.get(f"/api/v1/studies/{STUDY}/schedule", headers=bearer(coordinator))
    assert worklist.json()["messages_failed"] == 1
    assert _messages(api, api.user("coordinator", "PIT")) == []  # another site's


def test_a_message_the_server_could_not_take_is_sent_on_a_later_try(api, settings, inbox):
    _enroll(api, "ann@example.org")
    at = utcnow()
    down = _mailer(settings, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_s=5)
    try:
        assert run_pass(down, now=at).failed == 1  # nobody listens on that port
    finally:
        down.dispose()
    up = _mailer(settings, smtp_host="127.0.0.1", smtp_port=inbox.port)
    try:
        assert run_pass(up, now=at + FIRST_WAIT + SLACK).sent == 1
    finally:
        up.dispose()
    assert len(inbox.to("ann@example.org")) == 1


def test_a_participant_without_an_email_address_is_shown_at_once(api, mailer, inbox):
    code = _enroll(api, None)
    assert run_pass(mailer).failed == 1
    [failed] = _messages(api)
    assert failed["participant"] == code and "no email address" in failed["last_error"]
    assert failed["status"] == "failed" and failed["attempts"] == 0


def test_a_safety_alert_is_emailed_to_the_sites_coordinators_without_answers(api, mailer, inbox):
    api.user("coordinator", "PHL", email="phl-coordinator@example.org")
    api.user("coordinator", "PIT", email="pit-coordinator@example.org")
    code = _enroll(api, "ann@example.org")
    run_pass(mailer)  # the invitation
    api.complete_survey(code, answers={**_baseline(), "phq9_9": 2})
    assert run_pass(mailer).sent == 1
    [alert] = inbox.to("phl-coordinator@example.org")
    text = body(alert)
    assert code in alert["Subject"] and code in text
    assert f"http://testserver/console/studies/{STUDY}/participants/{code}" in text
    assert "phq9" not in text.lower() and "PHQ" not in text and "ann@" not in text
    assert inbox.to("pit-coordinator@example.org") == []


def test_an_alert_at_a_site_without_a_coordinator_is_shown_as_failed(api, mailer, inbox):
    contact = {"name": "Ann Example", "email": "ann@example.org"}
    code = api.enroll(api.admin_token, site="PIT", contact=contact)  # PIT has no coordinator
    run_pass(mailer)  # the invitation
    api.complete_survey(code, answers={**_baseline(), "phq9_9": 1})
    assert run_pass(mailer) == PassReport(enqueued=0, sent=0, failed=1, skipped=0)
    [failed] = _messages(api)
    assert failed["kind"] == "alert" and failed["participant"] == code
    assert "no active coordinator" in failed["last_error"]


def test_without_an_smtp_server_each_email_is_a_file_only_its_owner_reads(api, settings, tmp_path):
    folder = tmp_path / "mail"
    db = _mailer(settings, smtp_host=None, mail_dir=folder)
    try:
        _enroll(api, "ann@example.org")
        assert run_pass(db).sent == 1
    finally:
        db.dispose()
    [written] = list(folder.glob("*.eml"))
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    text = written.read_text()
    assert "To: ann@example.org" in text and "/s/" in text


def _baseline() -> dict:
    from tests.helpers import BASELINE_ANSWERS

    return dict(BASELINE_ANSWERS)


# --- two processes at once -------------------------------------------------------------
def _run_once(settings, port: int, now: datetime) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRIALDESK_DATABASE_URL": settings.database_url,
        "TRIALDESK_SMTP_HOST": "127.0.0.1",
        "TRIALDESK_SMTP_PORT": str(port),
        "TRIALDESK_BASE_URL": settings.base_url,
        "TRIALDESK_DB_LOCK_TIMEOUT_MS": "120000",
        "TRIALDESK_LOG_LEVEL": "WARNING",
    }
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    command = [sys.executable, "-m", "app.cli", "scheduler", "run-once", "--now", now.isoformat()]
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_two_scheduler_processes_at_once_send_each_message_exactly_once(api, settings, db):
    emails = [f"p{n}@example.org" for n in range(50)]
    coordinator = api.user("coordinator", "PHL")
    for email in emails:
        api.enroll(coordinator, contact={"name": "P", "email": email})
    inbox = Inbox(meet=2)  # each waits at its first message until the other has come
    now = utcnow()
    with smtp_server(inbox) as port:
        passes = [_run_once(settings, port, now) for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in passes]
    for process, (_out, err) in zip(passes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
    reports = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(r["enqueued"] for r in reports) == 50
    assert sum(r["sent"] for r in reports) == 50
    assert all(r["sent"] > 0 for r in reports)  # both truly sent, at the same time
    received = Counter(str(m["To"]) for m in inbox.messages)
    assert received == Counter(emails)  # each participant exactly once
    with db.session(write=False) as session:
        statuses = Counter(session.scalars(select(OutboxMessage.status)))
    assert statuses == {MessageStatus.sent: 50}


@pytest.mark.slow
def test_the_server_runs_the_scheduler_and_stops_it_cleanly(api, settings):
    inbox = Inbox()
    with smtp_server(inbox) as port:
        env = {
            "TRIALDESK_DATABASE_URL": settings.database_url,
            "TRIALDESK_SCHEDULER": "true",
            "TRIALDESK_SCHEDULER_INTERVAL_S": "1",
            "TRIALDESK_SMTP_HOST": "127.0.0.1",
            "TRIALDESK_SMTP_PORT": str(port),
        }
        if settings.secret_key is not None:
            env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
        with running_servers(env):
            _enroll(api, "ann@example.org")  # through the test's app: the same database
            assert inbox.received.wait(timeout=120), "the server's scheduler sent nothing"
    [message] = inbox.to("ann@example.org")
    assert re.search(r"/s/[\w-]{43}\s", body(message))


def test_an_alert_some_coordinators_refuse_is_failed_once_and_never_repeated(api, mailer, inbox):
    api.user("coordinator", "PHL", email="phl-one@example.org")
    api.user("coordinator", "PHL", email="phl-two@example.org")
    inbox.refuse.add("phl-two@example.org")
    code = _enroll(api, "ann@example.org")
    run_pass(mailer)  # the invitation
    api.complete_survey(code, answers={**_baseline(), "phq9_9": 2})
    assert run_pass(mailer) == PassReport(enqueued=0, sent=0, failed=1, skipped=0)
    [failed] = _messages(api)
    assert failed["kind"] == "alert" and "refused for 1 of the recipients" in failed["last_error"]
    [received] = inbox.to("phl-one@example.org")
    assert re.fullmatch(r"<trialdesk-outbox-\d+@localhost>", received["Message-ID"])
    later = datetime.now(UTC) + timedelta(hours=3)  # past every retry
    assert run_pass(mailer, now=later).failed == 0
    assert len(inbox.to("phl-one@example.org")) == 1  # once, not once per retry
