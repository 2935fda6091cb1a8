"""Signing in to the staff console: a one-time link by email, a session cookie, forms
that only the session's own pages can send, and sessions that end when they should."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.audit.models import AuditRecord
from app.auth import service as auth
from app.auth.models import ConsoleSession, SignInLink
from app.db.base import utcnow
from app.db.engine import Database
from app.outbox.models import MessageKind, OutboxMessage
from app.scheduler.runner import run_pass
from app.users.sign_in import LINKS_PER_WINDOW
from tests.console.conftest import ORIGIN, Browser, csrf_of, link_for
from tests.helpers import bearer
from tests.smtp import body
from tests.test_cli import trialdesk

LINK = re.compile(r"http://testserver(/console/sign-in/[\w-]+)")


def _coordinator(api, email: str) -> None:
    api.user("coordinator", "PHL", email=email)


def _ask_for_link(browser: Browser, email: str):  # type: ignore[no-untyped-def]
    return browser.post("/console/sign-in", {"email": email})


def test_a_coordinator_signs_in_with_the_link_the_email_brings(api, client, db, mailer, inbox):
    _coordinator(api, "cora@example.org")
    browser = Browser(client, "cora@example.org")
    asked = _ask_for_link(browser, "Cora@Example.org ")
    assert asked.status_code == 200
    assert "Check your email" in asked.text
    assert run_pass(mailer).sent == 1
    [mail] = inbox.to("cora@example.org")
    assert mail["Subject"] == "Your Trialdesk sign-in link"
    path = LINK.search(body(mail)).group(1)  # type: ignore[union-attr]

    opened = browser.client.get(path)  # opening the link (a mail scanner too) uses nothing
    assert opened.status_code == 200 and opened.headers["Referrer-Policy"] == "no-referrer"
    used = browser.client.post(path, data={"csrf_token": csrf_of(opened.text)}, headers=ORIGIN)
    assert used.status_code == 303 and used.headers["location"] == "/console"
    cookie = used.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    home = browser.get("/console")
    assert home.status_code == 200 and "cora@example.org" in home.text
    assert "Online peer support" in home.text

    with db.session(write=False) as session:
        actions = session.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)).all()
    assert actions[-2:] == ["user.sign_in_link_issued", "user.signed_in"]


def test_the_form_says_the_same_for_an_address_nobody_has_and_sends_nothing(client, api, db):
    browser = Browser(client, "nobody@example.org")
    asked = _ask_for_link(browser, "nobody@example.org")
    assert asked.status_code == 200 and "Check your email" in asked.text
    with db.session(write=False) as session:
        assert session.scalars(select(OutboxMessage)).all() == []


def test_a_link_works_once_and_not_after_it_expires(api, client, db):
    _coordinator(api, "once@example.org")
    link = link_for(db, "once@example.org")
    first, second = Browser(client, "a"), Browser(client, "b")
    assert first.open_link(link).status_code == 303
    again = second.open_link(link)
    assert again.status_code == 410 and "does not work" in again.text
    assert "set-cookie" not in again.headers

    expired = link_for(db, "once@example.org", minutes=-1)
    assert Browser(client, "c").open_link(expired).status_code == 410


def test_a_deactivated_users_link_signs_nobody_in(api, client, db):
    _coordinator(api, "gone@example.org")
    link = link_for(db, "gone@example.org")
    user_id = _user_id(api, "gone@example.org")
    gone = client.post(
        f"/api/v1/users/{user_id}/deactivate",
        json={"reason": "left"},
        headers=bearer(api.admin_token),
    )
    assert gone.status_code == 200
    assert Browser(client, "x").open_link(link).status_code == 410


def test_the_email_form_is_bounded_per_user(api, client, db):
    _coordinator(api, "busy@example.org")
    browser = Browser(client, "busy@example.org")
    for _ in range(LINKS_PER_WINDOW + 2):
        assert _ask_for_link(browser, "busy@example.org").status_code == 200
    with db.session(write=False) as session:
        queued = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == MessageKind.sign_in)
        ).all()
    assert len(queued) == LINKS_PER_WINDOW


def test_forms_without_the_sessions_token_or_from_another_site_are_refused(signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    other = signed_in("coordinator", "PHL")
    path = "/console/studies/peer-support/enroll"
    mine = csrf_of(coordinator.get(path).text)
    theirs = csrf_of(other.get(path).text)
    assert mine != theirs
    for data, headers in (
        ({}, ORIGIN),
        ({"csrf_token": theirs}, ORIGIN),
        ({"csrf_token": mine}, {"Origin": "https://evil.example"}),
        ({"csrf_token": mine}, {**ORIGIN, "Sec-Fetch-Site": "cross-site"}),
    ):
        refused = coordinator.client.post(path, data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
    signed_out = Browser(coordinator.client, "nobody")
    asked = signed_out.client.post(
        "/console/sign-in", data={"email": "x@example.org"}, headers=ORIGIN
    )
    assert asked.status_code == 403  # no token bound to this browser's cookie


def test_signed_out_visitors_are_sent_to_the_sign_in_page(client, api):
    browser = Browser(client, "nobody")
    for path in (
        "/console",
        "/console/studies/peer-support",
        "/console/studies/peer-support/participants/PS-PHL-0001",
        "/console/studies/peer-support/exports/package",
    ):
        shown = browser.get(path)
        assert shown.status_code == 303, path
        assert shown.headers["location"].startswith("/console/sign-in?next=")
    forged = browser.client.get("/console", cookies={"trialdesk_session": "x" * 43})
    assert forged.status_code == 303


def test_a_session_ends_after_the_idle_time(signed_in, db, settings):
    browser = signed_in("coordinator", "PHL")
    idle = timedelta(minutes=settings.console_idle_minutes, seconds=1)
    with db.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - idle))
    assert browser.get("/console").status_code == 303


def test_use_keeps_a_session_alive(signed_in, db, settings):
    browser = signed_in("coordinator", "PHL")
    almost = timedelta(minutes=settings.console_idle_minutes - 1)
    with db.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - almost))
    assert browser.get("/console").status_code == 200
    with db.session(write=False) as session:
        seen = session.scalars(select(ConsoleSession.last_seen_at)).one()
    assert utcnow() - seen < timedelta(minutes=1)


def test_a_session_ends_at_its_absolute_end(signed_in, db):
    browser = signed_in("coordinator", "PHL")
    with db.begin() as session:
        session.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert browser.get("/console").status_code == 303


def _user_id(api, email: str) -> int:
    db: Database = api.client.app.state.db
    with db.session(write=False) as session:
        user = auth.find_user(session, email=email)
        assert user is not None
        return user.id


@pytest.mark.parametrize("how", ["revoke", "deactivate"])
def test_revoking_or_deactivating_a_user_signs_them_out_at_once(signed_in, api, how):
    browser = signed_in("coordinator", "PHL")
    assert browser.get("/console").status_code == 200
    user_id = _user_id(api, browser.email)
    headers = bearer(api.admin_token)
    if how == "revoke":
        done = api.client.delete(f"/api/v1/users/{user_id}/tokens", headers=headers)
        assert done.status_code == 204
    else:
        done = api.client.post(
            f"/api/v1/users/{user_id}/deactivate", json={"reason": "left"}, headers=headers
        )
        assert done.status_code == 200
    assert browser.get("/console").status_code == 303


def test_signing_out_ends_the_session_and_its_cookie(signed_in, db):
    browser = signed_in("coordinator", "PHL")
    cookie = browser.client.cookies.get("trialdesk_session")
    out = browser.post("/console/sign-out", csrf_from="/console")
    assert out.status_code == 303 and out.headers["location"].startswith("/console/sign-in")
    assert 'trialdesk_session=""' in out.headers["set-cookie"]
    replay = Browser(browser.client, "thief")
    replayed = replay.client.get("/console", cookies={"trialdesk_session": cookie})
    assert replayed.status_code == 303
    with db.session(write=False) as session:
        assert session.scalars(select(ConsoleSession.ended_at)).one() is not None
        last = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())).first()
    assert last is not None and last.action == "user.signed_out"


def test_the_cookie_is_secure_when_the_console_is_served_over_https(api, client, db):
    client.app.state.settings = client.app.state.settings.model_copy(
        update={"base_url": "https://trial.example.org"}
    )
    _coordinator(api, "tls@example.org")
    used = Browser(client, "tls").open_link(link_for(db, "tls@example.org"))
    assert used.status_code == 303 and "Secure" in used.headers["set-cookie"]


def test_pages_carry_the_security_headers_and_are_not_cached(signed_in):
    browser = signed_in("coordinator", "PHL")
    shown = browser.get("/console/studies/peer-support")
    assert shown.status_code == 200
    headers = shown.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_cli_prints_a_working_link_alone_on_the_last_line(api, client, settings, db):
    _coordinator(api, "cli@example.org")
    done = trialdesk(settings, "users", "sign-in-link", "cli@example.org")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/console/sign-in/[\w-]{43}", url)
    path = url.removeprefix("http://127.0.0.1:8000")
    assert Browser(client, "cli").open_link(path).status_code == 303
    missing = trialdesk(settings, "users", "sign-in-link", "nobody@example.org")
    assert missing.returncode == 1
    with db.session(write=False) as session:
        assert session.scalars(select(SignInLink.used_at)).one() is not None


def test_after_signing_in_the_visitor_lands_on_the_page_they_asked_for(api, client, db):
    _coordinator(api, "next@example.org")
    browser = Browser(client, "next")
    wanted = "/console/studies/peer-support/worklist?status=open"
    sent = browser.get(wanted)
    assert sent.status_code == 303
    assert browser.get(sent.headers["location"]).status_code == 200  # the sign-in form
    landed = browser.open_link(link_for(db, "next@example.org"))
    assert landed.status_code == 303 and landed.headers["location"] == wanted
    elsewhere = Browser(client, "evil")
    elsewhere.get("/console/sign-in?next=https://evil.example/console")
    again = elsewhere.open_link(link_for(db, "next@example.org"))
    assert again.headers["location"] == "/console"


def test_a_browser_posting_origin_null_is_taken_only_from_its_own_pages(api, client, db):
    """The link's page has no referrer, so browsers post its form with `Origin: null`."""
    _coordinator(api, "null@example.org")
    for fetch_site, status in (("cross-site", 403), (None, 403), ("same-origin", 303)):
        path = link_for(db, "null@example.org").removeprefix("http://testserver")
        browser = Browser(client, "null")
        page = browser.client.get(path)
        headers = {"Origin": "null", **({"Sec-Fetch-Site": fetch_site} if fetch_site else {})}
        pressed = browser.client.post(
            path, data={"csrf_token": csrf_of(page.text)}, headers=headers
        )
        assert pressed.status_code == status, fetch_site


def test_a_form_larger_than_any_console_form_gets_a_page(signed_in):
    browser = signed_in("coordinator", "PHL")
    page = browser.get("/console/studies/peer-support/enroll")
    huge = {"csrf_token": csrf_of(page.text), "contact-name": "x" * 100_000}
    refused = browser.client.post("/console/studies/peer-support/enroll", data=huge, headers=ORIGIN)
    assert refused.status_code == 413
    assert refused.headers["content-type"].startswith("text/html")
    assert "The form is too large" in refused.text


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/console/sign-in?next=/console/%E2%82%AC", {}),
        ("GET", "/console/studies/peer-support/participants/%E2%82%AC", {}),
        ("POST", "/console/sign-in", {"Origin": "http://["}),
        ("GET", "/console/studies/nope", {"Referer": "http://["}),
        ("POST", "/console/sign-out", {"Referer": "http://[", **ORIGIN}),
    ],
)
def test_odd_addresses_and_headers_get_an_answer_never_a_500(module_api, method, path, headers):
    # Requests of no one signed in, which change nothing: one application per backend.
    client = module_api.client
    browser = Browser(client, "odd")
    browser.client = type(browser.client)(client.app, raise_server_exceptions=False)
    browser.client.follow_redirects = False
    answered = browser.client.request(method, path, headers=headers)
    assert answered.status_code < 500, answered.text


def test_revoking_a_users_tokens_also_kills_their_unused_sign_in_links(api, client, db):
    _coordinator(api, "lost@example.org")
    link = link_for(db, "lost@example.org")
    revoked = client.delete(
        f"/api/v1/users/{_user_id(api, 'lost@example.org')}/tokens",
        headers=bearer(api.admin_token),
    )
    assert revoked.status_code == 204
    assert Browser(client, "thief").open_link(link).status_code == 410
