"""Signing in to the console in tests: a user gets a one-time link, their own browser
(a TestClient with its own cookie jar) opens it and presses the button."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from app.auth import service as auth
from app.db.engine import Database
from app.users import sign_in
from tests.helpers import Api

ORIGIN = {"Origin": "http://testserver"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The form token of the (first) form of a page."""
    found = CSRF.search(html)
    assert found, "the page has no form with a csrf_token"
    return found.group(1)


class Browser:
    """One person's browser on the console."""

    def __init__(self, client: TestClient, email: str) -> None:
        self.client = TestClient(client.app, follow_redirects=False)
        self.email = email

    def get(self, path: str, **kwargs):  # type: ignore[no-untyped-def]
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf_from: str | None = None):  # type: ignore[no-untyped-def]
        """Post a form as the page at `csrf_from` (default: `path`) would."""
        page = self.client.get(csrf_from or path)
        form = {"csrf_token": csrf_of(page.text), **(data or {})}
        return self.client.post(path, data=form, headers=ORIGIN)

    def open_link(self, url: str):  # type: ignore[no-untyped-def]
        """Open a sign-in link and press its button."""
        path = url.removeprefix("http://testserver")
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        return self.client.post(path, data={"csrf_token": csrf_of(page.text)}, headers=ORIGIN)


def link_for(db: Database, email: str, *, minutes: float = 15) -> str:
    """A fresh sign-in link of the user (as `trialdesk users sign-in-link` makes one)."""
    with db.begin() as session:
        user = auth.find_user(session, email=email)
        assert user is not None
        _, token = sign_in.issue_link(
            session, user=user, lifetime=timedelta(minutes=minutes), actor_label="test"
        )
    return sign_in.sign_in_url("http://testserver", token)


@pytest.fixture
def signed_in(api: Api, db: Database, client: TestClient):  # type: ignore[no-untyped-def]
    """`signed_in(role, *sites)`: a new user of that role, signed in; their browser."""

    def make(role: str, *sites: str, study: str = "peer-support") -> Browser:
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
        api.user(role, *sites, study=study, email=email)
        browser = Browser(client, email)
        done = browser.open_link(link_for(db, email))
        assert done.status_code == 303, done.text
        return browser

    return make
