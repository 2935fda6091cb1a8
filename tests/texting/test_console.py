"""Text messages in the console: the texting form on a participant's page, and texts
participants sent at the top of the worklist until handled (SQLite only: the pages,
not the database, are what is tested; the API's tests run both backends)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from app.db.base import utcnow
from app.main import create_app
from app.participants.models import Participant
from app.texting.service import Inbound, receive
from app.texting.signature import twilio_signature
from tests.console.conftest import Browser, link_for
from tests.helpers import STUDY
from tests.texting.provider import ACCOUNT, SENDER, TOKEN

BASE = f"/console/studies/{STUDY}"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_texting_is_set_on_the_participant_page_and_texts_top_the_worklist(api, db, client):
    email = f"coordinator-{uuid.uuid4().hex[:8]}@example.org"
    api.user("coordinator", "PHL", email=email)
    browser = Browser(client, email)
    assert browser.open_link(link_for(db, email)).status_code == 303
    code = api.enroll(api.admin_token)
    page = f"{BASE}/participants/{code}"
    assert "Not recorded: no text is sent" in browser.get(page).text
    saved = browser.post(
        f"{page}/texting", {"channel": "sms", "sms_consent": "yes", "timezone": ""}, csrf_from=page
    )
    assert saved.status_code == 303, saved.text
    shown = browser.get(saved.headers["location"]).text
    assert "The texting preferences are saved." in shown and "Recorded" in shown
    with db.begin() as session:  # 9 pm on 4 January in New York, the study's zone
        person = session.scalars(select(Participant).where(Participant.code == code)).one()
        person.sms_consent_at = person.sms_stopped_at = datetime(2027, 1, 5, 2, 0, tzinfo=UTC)
    shown = browser.get(page).text
    assert "Recorded 4 Jan 2027" in shown and "Sent STOP 4 Jan 2027" in shown
    bad = browser.post(f"{page}/texting", {"channel": "pigeon"}, csrf_from=page)
    assert bad.status_code == 422

    with db.begin() as session:
        text = Inbound(provider_ref=uuid.uuid4().hex, from_number="+12155550100", body="Help!")
        reply = receive(session, text=text, now=utcnow())
        assert reply is not None
        reply_id = reply.id
    worklist = browser.get(f"{BASE}/worklist").text
    assert worklist.index("Texts from participants (1)") < worklist.index("Surveys")
    assert "Help!" in worklist and "Asked for help (HELP)" in worklist
    handled = browser.post(
        f"{BASE}/sms/replies/{reply_id}/handle",
        {"note": "called, safe"},
        csrf_from=f"{BASE}/worklist",
    )
    assert handled.status_code == 303
    assert "Texts from participants" not in browser.get(f"{BASE}/worklist").text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_webhook_checks_its_signature_before_it_waits_for_a_request_slot(settings):
    """Every request slot taken (none at all here): an unsigned webhook is refused at
    once, and only a signed one waits for a slot (503 when none frees in time)."""
    texting = settings.model_copy(
        update={
            "sms_provider": "twilio",
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": SecretStr(TOKEN),
            "twilio_from": SENDER,
            "request_slot_timeout_s": 0.05,
        }
    )
    with TestClient(create_app(texting)) as client:
        client.app.state.request_slots = asyncio.Semaphore(0)  # type: ignore[attr-defined]
        form = {"MessageSid": "SMslot1", "From": "+12155550100", "Body": "hi"}
        unsigned = client.post("/api/v1/sms/inbound", data=form)
        assert unsigned.status_code == 403
        url = "http://testserver/api/v1/sms/inbound"
        signature = twilio_signature(url, form.items(), token=TOKEN)
        signed = client.post(
            "/api/v1/sms/inbound", data=form, headers={"X-Twilio-Signature": signature}
        )
        assert signed.status_code == 503
