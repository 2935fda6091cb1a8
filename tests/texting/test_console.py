"""Text messages in the console: the texting form on a participant's page, and texts
participants sent at the top of the worklist until handled (SQLite only: the pages,
not the database, are what is tested; the API's tests run both backends)."""

from __future__ import annotations

import uuid

import pytest

from app.db.base import utcnow
from app.texting.service import Inbound, receive
from tests.console.conftest import Browser, link_for
from tests.helpers import STUDY

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
    bad = browser.post(f"{page}/texting", {"channel": "pigeon"}, csrf_from=page)
    assert bad.status_code == 422

    with db.begin() as session:
        text = Inbound(provider_ref=uuid.uuid4().hex, from_number="+12155550100", body="help me")
        reply = receive(session, text=text, now=utcnow())
        assert reply is not None
        reply_id = reply.id
    worklist = browser.get(f"{BASE}/worklist").text
    assert worklist.index("Texts from participants (1)") < worklist.index("Surveys")
    assert "help me" in worklist and "Asked for help (HELP)" in worklist
    handled = browser.post(
        f"{BASE}/sms/replies/{reply_id}/handle",
        {"note": "called, safe"},
        csrf_from=f"{BASE}/worklist",
    )
    assert handled.status_code == 303
    assert "Texts from participants" not in browser.get(f"{BASE}/worklist").text
