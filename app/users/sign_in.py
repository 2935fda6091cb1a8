"""Signing in to the staff console: one-time links (by email, through the outbox, or
printed by the CLI), the sessions they open, and signing out; every step audited."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth import service as auth
from app.auth.models import User
from app.auth.service import SignedIn
from app.db.server_key import keys_of
from app.keys import Use
from app.outbox import service as outbox
from app.outbox.models import MessageKind

SIGN_IN_PATH = "/console/sign-in"
# Emailed links a user may be sent within LINKS_WINDOW: enough for a mistyped address
# or a slow mail server, too few to flood an inbox from the sign-in form.
LINKS_PER_WINDOW = 5
LINKS_WINDOW = timedelta(minutes=15)


def sign_in_url(base_url: str, token: str) -> str:
    """The address of a sign-in link."""
    return f"{base_url}{SIGN_IN_PATH}/{token}"


def issue_link(
    session: Session, *, user: User, lifetime: timedelta, actor_label: str
) -> tuple[int, str]:
    """A new one-time sign-in link of the user: (its id, its token); audited."""
    now = audit.lock_chain_head(session).at
    key = keys_of(session).derived(Use.console)
    link, token = auth.create_sign_in_link(session, user=user, key=key, now=now, lifetime=lifetime)
    audit.record(
        session,
        AuditAction.sign_in_link_issued,
        actor=None,
        actor_label=actor_label,
        entity_id=user.id,
        changes={"expires_at": (None, link.expires_at.isoformat())},
    )
    return link.id, token


def mail_link(session: Session, *, email: str, lifetime: timedelta, now: datetime) -> bool:
    """Email the user of this address a sign-in link, through the outbox; whether one
    was queued. Nobody is told which: an unknown or deactivated address, or one sent too
    many links lately, gets nothing, and the form says the same either way."""
    user = auth.find_user(session, email=email)
    if user is None or user.deactivated_at is not None:
        return False
    audit.lock_chain_head(session)  # one at a time: the count below holds under a burst
    if auth.sign_in_links_since(session, user=user, since=now - LINKS_WINDOW) >= LINKS_PER_WINDOW:
        return False
    link_id, _ = issue_link(session, user=user, lifetime=lifetime, actor_label="sign-in form")
    return outbox.enqueue(
        session,
        kind=MessageKind.sign_in,
        dedupe_key=f"sign-in:{link_id}",
        subject_id=link_id,
        now=now,
    )


def sign_in(session: Session, *, token: str, lifetime: timedelta) -> tuple[User, str]:
    """Use up a sign-in link and open a session: (the user, the cookie's value).
    `NotAuthenticated` if the link is unknown, used or expired."""
    now = audit.lock_chain_head(session).at
    user = auth.use_sign_in_link(session, token=token, now=now)
    cookie = auth.open_session(session, user=user, now=now, lifetime=lifetime)
    audit.record(
        session,
        AuditAction.signed_in,
        actor=auth.principal_of(user),
        entity_id=user.id,
    )
    return user, cookie


def sign_out(session: Session, *, signed_in: SignedIn) -> None:
    """End the session; audited."""
    now = audit.lock_chain_head(session).at
    auth.end_session(session, session_id=signed_in.session_id, now=now)
    audit.record(
        session, AuditAction.signed_out, actor=signed_in.principal, entity_id=signed_in.principal.id
    )
