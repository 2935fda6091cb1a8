"""Text messages end to end (SPEC 11, issue 17): a Trialdesk server, the scheduler run
here, and a local server speaking Twilio's API that calls the server's webhooks back.

One server per backend for the module; each test has participants (and numbers) of
its own, so the order of the tests does not matter.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from app.audit.actions import AuditAction
from app.audit.models import AuditRecord
from app.config import Settings
from app.db.base import utcnow
from app.db.engine import Database
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.demo import load_demo
from app.outbox.models import Channel, MessageStatus, OutboxMessage
from app.outbox.retry import FIRST_WAIT
from app.participants.models import Contact, Participant
from app.scheduler import sms
from app.scheduler.outcome import Claimed, Sent
from app.scheduler.runner import run_pass
from app.surveys.models import SurveyInstance
from app.texting.provider import Text, TwilioTexts
from tests.helpers import STUDY, Api, bearer
from tests.live import running_servers
from tests.texting.provider import (
    ACCOUNT,
    SENDER,
    TOKEN,
    FakeTwilio,
    deliver,
    fake_twilio,
    signed_post,
)

S = f"/api/v1/studies/{STUDY}"
ZONE = ZoneInfo("America/New_York")  # the demo study's
LINK = re.compile(r"http://testserver/s/[\w-]+")
_numbers = itertools.count(20)


@dataclass
class Env:
    api: Api
    db: Database
    fake: FakeTwilio
    url: str
    day: date  # the day the tests enroll, in the study's zone

    def at(self, days: int, clock: str) -> datetime:
        """`clock` (HH:MM, New York) on the day `days` after enrollment, in UTC."""
        hours, minutes = map(int, clock.split(":"))
        local = datetime.combine(self.day + timedelta(days=days), time(hours, minutes), ZONE)
        return local.astimezone(UTC)

    def webhook(self, path: str, form: dict[str, str]) -> httpx.Response:
        return signed_post(self.url, f"http://testserver/api/v1/sms/{path}", form)


@pytest.fixture(scope="module")
def env(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    mail = tmp_path_factory.mktemp("mail")
    with fake_twilio() as fake:
        settings = module_settings.model_copy(
            update={
                "sms_provider": "twilio",
                "twilio_account_sid": ACCOUNT,
                "twilio_auth_token": SecretStr(TOKEN),
                "twilio_from": SENDER,
                "twilio_api_url": fake.url,
                "mail_dir": mail,
            }
        )
        db = Database(settings)
        with db.begin() as session:
            admin = load_demo(session).token
        server = {
            "TRIALDESK_DATABASE_URL": settings.database_url,
            "TRIALDESK_BASE_URL": "http://testserver",
            "TRIALDESK_SMS_PROVIDER": "twilio",
            "TRIALDESK_TWILIO_ACCOUNT_SID": ACCOUNT,
            "TRIALDESK_TWILIO_AUTH_TOKEN": TOKEN,
            "TRIALDESK_TWILIO_FROM": SENDER,
            "TRIALDESK_TWILIO_API_URL": fake.url,
            "TRIALDESK_MAIL_DIR": str(mail),
        }
        if settings.secret_key is not None:
            server["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
        with running_servers(server) as [url], httpx.Client(base_url=url, timeout=60) as client:
            day = utcnow().astimezone(ZONE).date()
            yield Env(Api(client, admin_token=admin), db, fake, url, day)
        db.dispose()


def _texting_participant(
    env: Env, channel: str = "sms", *, consent: bool = True
) -> tuple[str, str]:
    """A new participant at PHL with a number of their own, texting as told: (code,
    E.164 number)."""
    n = next(_numbers)
    number = f"+1215555{n:04d}"
    code = env.api.enroll(
        env.api.admin_token,
        contact={"name": "Pat Doe", "email": f"pat{n}@example.org", "phone": f"(215) 555-{n:04d}"},
    )
    texting = {"channel": channel, "sms_consent": consent}
    answer = env.api.client.put(
        f"{S}/participants/{code}/texting", json=texting, headers=bearer(env.api.admin_token)
    )
    assert answer.status_code == 200, answer.text
    return code, number


def _rows(env: Env, code: str) -> list[OutboxMessage]:
    with env.db.session(write=False) as session:
        query = select(OutboxMessage).where(OutboxMessage.participant_code == code)
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def test_an_invitation_goes_by_text_and_its_delivery_is_recorded(env: Env) -> None:
    code, number = _texting_participant(env)
    shown = env.api.client.get(f"{S}/participants/{code}", headers=bearer(env.api.admin_token))
    assert shown.json()["contact"]["phone"] == number  # kept in E.164
    assert shown.json()["texting"]["sms_consent"] is True
    run_pass(env.db, now=env.at(1, "12:00"))
    [text] = env.fake.to(number)
    assert text.sender == SENDER and text.body.startswith("Hello Pat, your survey is ready: ")
    [link] = LINK.findall(text.body)
    assert env.api.client.get(link.removeprefix("http://testserver")).status_code == 200
    for revealing in ("Peer Support", "mental", "illness", "bipolar", "depress"):
        assert revealing.lower() not in text.body.lower()
    [row] = _rows(env, code)  # channel `sms`: no email beside it
    assert (row.channel, row.status, row.provider_ref) == (Channel.sms, "sent", text.sid)

    forged = signed_post(
        env.url,
        text.callback,
        {"MessageSid": text.sid, "MessageStatus": "failed"},
        token="not-the-token",
    )
    assert forged.status_code == 403
    assert deliver(env.url, text, "delivered").json() == {"recorded": True}
    assert deliver(env.url, text, "sent").status_code == 200  # late: does not undo it
    [row] = _rows(env, code)
    assert (row.delivery, row.status) == ("delivered", MessageStatus.sent)


def test_a_reminder_due_in_quiet_hours_goes_when_they_end(env: Env) -> None:
    code, number = _texting_participant(env, "both")
    run_pass(env.db, now=env.at(1, "12:00"))
    assert len(env.fake.to(number)) == 1
    assert [r.channel for r in _rows(env, code)] == [Channel.email, Channel.sms]
    late = run_pass(env.db, now=env.at(3, "23:00"))  # the first reminder's day, at night
    assert late.enqueued >= 2 and len(env.fake.to(number)) == 1
    *_, email, text = _rows(env, code)
    assert (email.channel, email.status) == (Channel.email, MessageStatus.sent)
    assert (text.status, text.attempts) == (MessageStatus.pending, 0)  # not a failed try
    assert text.next_attempt_at.replace(tzinfo=UTC) == env.at(4, "09:00")
    run_pass(env.db, now=env.at(4, "08:59"))
    assert len(env.fake.to(number)) == 1
    run_pass(env.db, now=env.at(4, "09:00"))
    [_, reminder] = env.fake.to(number)
    assert "a reminder: your survey is still open" in reminder.body


def test_stop_ends_texting_and_shows_to_staff(env: Env) -> None:
    code, number = _texting_participant(env)
    coordinator = bearer(env.api.user("coordinator", "PHL"))
    stop = {"MessageSid": f"SMstop{code.replace('-', '')}", "From": number, "Body": "Stop."}
    assert env.webhook("inbound", stop).status_code == 200
    shown = env.api.client.get(f"{S}/participants/{code}", headers=coordinator).json()
    assert shown["texting"]["sms_stopped_at"] is not None
    replies = env.api.client.get(f"{S}/sms/replies", headers=coordinator).json()["items"]
    assert [r["kind"] for r in replies if r["participant"] == code] == ["stop"]
    run_pass(env.db, now=env.at(1, "12:00"))
    assert env.fake.to(number) == []  # no invitation, and no answer to STOP
    # Texted only, with an email address: the invitation goes by email instead.
    [row] = _rows(env, code)
    assert (row.channel, row.status) == (Channel.email, MessageStatus.sent)


def test_a_reply_is_answered_with_the_crisis_line_and_waits_at_the_top(env: Env) -> None:
    code, number = _texting_participant(env)
    coordinator = bearer(env.api.user("coordinator", "PHL"))
    text = {"MessageSid": f"SMreply{code.replace('-', '')}", "From": number, "Body": "I feel low"}
    assert env.webhook("inbound", text).status_code == 200
    assert env.webhook("inbound", text).status_code == 200  # delivered twice: kept once
    stranger = {"MessageSid": f"SMx{code.replace('-', '')}", "From": "+12675550199", "Body": "?"}
    assert env.webhook("inbound", stranger).status_code == 200
    assert env.webhook("inbound", text | {"MessageSid": "SM<1>"}).status_code == 422
    run_pass(env.db, now=env.at(1, "02:00"))  # an answer does not wait for quiet hours
    [answer] = env.fake.to(number)
    assert answer.body.startswith("This number is not watched around the clock.")
    assert "988" in answer.body
    [unknown_answer] = env.fake.to("+12675550199")
    assert "988" in unknown_answer.body

    listed = env.api.client.get(f"{S}/sms/replies?open=true", headers=coordinator).json()
    [mine] = [r for r in listed["items"] if r["participant"] == code]
    assert mine["body"] == "I feel low" and mine["kind"] == "reply"
    received = datetime.fromisoformat(mine["received_at"])
    assert datetime.fromisoformat(mine["respond_by"]) - received == timedelta(hours=24)
    assert all(r["participant"] is not None for r in listed["items"])  # not the stranger's
    admin = bearer(env.api.admin_token)
    everyone = env.api.client.get(f"{S}/sms/replies?open=true", headers=admin).json()["items"]
    assert any(r["participant"] is None for r in everyone)

    handled = env.api.client.post(
        f"{S}/sms/replies/{mine['id']}/handle", json={"note": "called back"}, headers=coordinator
    )
    assert handled.status_code == 200 and handled.json()["handled_at"] is not None
    listed = env.api.client.get(f"{S}/sms/replies?open=true", headers=coordinator).json()
    assert mine["id"] not in [r["id"] for r in listed["items"]]


def test_a_provider_error_is_tried_again_and_a_refused_number_fails_for_good(env: Env) -> None:
    code, number = _texting_participant(env)
    refused_code, refused = _texting_participant(env)
    env.fake.failures[number], env.fake.refused = 1, {refused}
    first = env.at(1, "12:00")
    run_pass(env.db, now=first)
    rows = {r.participant_code: r for r in _rows(env, code) + _rows(env, refused_code)}
    assert env.fake.to(number) == [] and rows[code].attempts == 1
    assert rows[code].status == MessageStatus.pending
    assert rows[refused_code].status == MessageStatus.failed
    assert "21211" in (rows[refused_code].last_error or "")
    run_pass(env.db, now=first + 2 * FIRST_WAIT)  # the clock ran on in the pass
    assert len(env.fake.to(number)) == 1
    assert [r.status for r in _rows(env, code)] == [MessageStatus.sent]


def test_a_number_without_consent_to_texting_is_not_texted(env: Env) -> None:
    code, number = _texting_participant(env, consent=False)
    run_pass(env.db, now=env.at(1, "12:00"))
    assert env.fake.to(number) == []
    [row] = _rows(env, code)
    assert row.status == MessageStatus.failed and "consent" in (row.last_error or "")


def _legacy(env: Env, code: str, typed: str) -> None:
    """Keep the participant's number as participants enrolled before this release have
    it: as typed, hashed by its digits."""
    with env.db.begin() as session:
        contact = session.scalars(
            select(Contact).join(Participant).where(Participant.code == code)
        ).one()
        contact.phone = typed
        contact.phone_index = keyed_hash(sealing_keys_of(session), "phone", typed)


def _participant(env: Env, code: str) -> dict[str, Any]:
    shown = env.api.client.get(f"{S}/participants/{code}", headers=bearer(env.api.admin_token))
    return shown.json()  # type: ignore[no-any-return]


def test_a_shared_number_is_found_in_any_stored_form_and_stop_stops_everyone(env: Env) -> None:
    older, number = _texting_participant(env)
    _legacy(env, older, f"{number[2:5]}-{number[5:8]}-{number[8:]}")  # 215-555-0123
    newer = env.api.enroll(
        env.api.admin_token,
        contact={"name": "Sam Doe", "email": "sam@example.org", "phone": number},
    )
    sid = itertools.count()

    def text(body: str) -> None:
        form = {"MessageSid": f"SMshared{older.replace('-', '')}{next(sid)}", "From": number}
        assert env.webhook("inbound", form | {"Body": body}).status_code == 200

    text("Quit. I can't do this")  # read by a person, routed to the latest enrolled
    text("STOP")
    text("start")
    admin = bearer(env.api.admin_token)
    listed = env.api.client.get(f"{S}/sms/replies?open=true", headers=admin).json()["items"]
    mine = [(r["participant"], r["kind"]) for r in listed if r["participant"] in (older, newer)]
    assert mine == [(newer, "reply"), (newer, "stop"), (newer, "start")]  # START waits too
    with env.db.session(write=False) as session:
        stopped = session.scalars(
            select(AuditRecord.entity_id).where(AuditRecord.action == AuditAction.sms_stopped)
        ).all()
    assert older in stopped and newer in stopped  # each audited
    assert _participant(env, older)["texting"]["sms_stopped_at"] is None  # START: both again


def test_automatic_answers_are_one_an_hour_and_never_to_a_short_code(env: Env) -> None:
    stranger = f"+1267555{next(_numbers):04d}"
    for n, sender in enumerate([stranger, stranger, stranger, "12345", "ACME"]):
        form = {"MessageSid": f"SMloop{stranger[1:]}{n}", "From": sender, "Body": "hello?"}
        assert env.webhook("inbound", form).status_code == 200
    run_pass(env.db, now=env.at(1, "12:00"))
    assert len(env.fake.to(stranger)) == 1
    assert env.fake.to("12345") == env.fake.to("ACME") == []
    admin = bearer(env.api.admin_token)
    listed = env.api.client.get(f"{S}/sms/replies?open=true", headers=admin).json()["items"]
    numbers = [r["from_number"] for r in listed if r["participant"] is None]
    assert numbers.count(stranger) == 3 and "12345" in numbers  # each listed, to call back
    coordinator = bearer(env.api.user("coordinator", "PHL"))
    theirs = env.api.client.get(f"{S}/sms/replies", headers=coordinator).json()["items"]
    assert all(r["from_number"] is None for r in theirs)


class _StopWhileSending:
    """Hands the text to Twilio after the participant's STOP arrived (the webhook runs
    while the text is on its way): the race the outbox must not lose."""

    def __init__(self, env: Env, number: str) -> None:
        self.env, self.number, self.twilio = env, number, TwilioTexts(env.db.settings)

    def send(self, text: Text) -> str | None:
        form = {"MessageSid": f"SMrace{self.number[1:]}", "From": self.number, "Body": "STOP"}
        assert self.env.webhook("inbound", form).status_code == 200
        return self.twilio.send(text)

    def close(self) -> None:
        self.twilio.close()


def test_a_text_skipped_by_stop_while_being_sent_is_not_recorded_as_sent(env: Env) -> None:
    code, number = _texting_participant(env)
    run_pass(env.db, now=env.at(1, "12:00"))
    [invitation] = _rows(env, code)
    with env.db.begin() as session:  # as when a sender has just claimed it
        session.get_one(OutboxMessage, invitation.id).status = MessageStatus.pending
    claimed = Claimed(invitation.id, invitation.kind, invitation.subject_id, 0, Channel.sms)
    sender = _StopWhileSending(env, number)
    sms.send_text(env.db, sender, env.db.settings, claimed, now=env.at(1, "12:05"), done=Sent())
    sender.close()
    [invitation] = _rows(env, code)
    assert (invitation.status, invitation.last_error) == (
        MessageStatus.skipped,
        "the participant sent STOP",
    )


def test_a_resent_invitation_and_a_new_link_go_by_text_to_a_participant_who_texts(env: Env) -> None:
    code, number = _texting_participant(env)
    run_pass(env.db, now=env.at(1, "12:00"))
    [invitation] = _rows(env, code)
    with env.db.session(write=False) as session:
        timepoint = session.get_one(SurveyInstance, invitation.subject_id).timepoint
    resent = env.api.client.post(
        f"{S}/participants/{code}/surveys/{timepoint}/resend",
        headers=bearer(env.api.admin_token),
    )
    assert resent.status_code == 202, resent.text
    run_pass(env.db, now=env.at(1, "12:30"))
    first, again = env.fake.to(number)
    assert LINK.findall(again.body) == LINK.findall(first.body)
    reissued = env.api.client.post(
        f"{S}/participants/{code}/surveys/{timepoint}/reissue",
        headers=bearer(env.api.admin_token),
    )
    assert reissued.status_code == 200, reissued.text
    run_pass(env.db, now=env.at(1, "13:00"))
    *_, new = env.fake.to(number)
    assert new.body.startswith("Hello Pat, your survey is ready: ")
    assert LINK.findall(new.body) != LINK.findall(first.body)
    assert {r.channel for r in _rows(env, code)} == {Channel.sms}  # no email: sms only
