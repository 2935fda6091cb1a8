"""Tokens and authentication: who a bearer token belongs to."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, ConsoleSession, SignInLink, User, UserSite
from app.auth.permissions import is_site_scoped
from app.auth.principal import Principal, Role
from app.errors import NotAuthenticated, UserNotFound

TOKEN_PREFIX = "td_"


def hash_token(token: str) -> str:
    """SHA-256 of a token: a 256-bit random token needs no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once: only its hash is stored
    expires_at: datetime


def issue_token(session: Session, *, user: User, now: datetime, lifetime: timedelta) -> IssuedToken:
    """A new API token for the user, valid for `lifetime`; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + lifetime
    session.add(
        ApiToken(
            user_id=user.id, token_hash=hash_token(token), created_at=now, expires_at=expires_at
        )
    )
    session.flush()
    return IssuedToken(token, expires_at)


def revoke_tokens(session: Session, *, user: User, now: datetime) -> int:
    """Refuse every token of the user from now on; return how many were valid."""
    revoked = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(revoked, "rowcount", 0) or 0)


def authenticate(session: Session, *, token: str, now: datetime) -> Principal:
    """Who a bearer token belongs to, or `NotAuthenticated`: unknown, revoked, expired,
    or its user deactivated (one or two small queries)."""
    row = session.execute(_SELECT_TOKEN_USER, {"token_hash": hash_token(token), "now": now}).first()
    if row is None:
        raise NotAuthenticated("missing, unknown, expired or revoked token")
    role = Role(row.role)
    site_ids: frozenset[int] = frozenset()
    if is_site_scoped(role):
        site_ids = frozenset(session.scalars(_SELECT_SITES, {"user_id": row.id}))
    return Principal(id=row.id, email=row.email, role=role, site_ids=site_ids)


# Built once: every request authenticates.
_SELECT_TOKEN_USER = (
    select(User.id, User.email, User.role)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > bindparam("now"),
        User.deactivated_at.is_(None),
    )
)
_SELECT_SITES = select(UserSite.site_id).where(UserSite.user_id == bindparam("user_id"))


def principal_of(user: User) -> Principal:
    """The principal of a user row (for set-up code that acts as a user it just made)."""
    return Principal(
        id=user.id,
        email=user.email,
        role=Role(user.role),
        site_ids=frozenset(link.site_id for link in user.site_links),
    )


def find_user(session: Session, *, email: str) -> User | None:
    """The user with this email, if any."""
    return session.scalars(select(User).where(User.email == email.strip().lower())).first()


def get_user(session: Session, *, user_id: int) -> User:
    """A user by id; UserNotFound if there is none."""
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound(f"no user {user_id}")
    return user


# --- the staff console: one-time sign-in links, and browser sessions ------------------


def sign_in_token(key: bytes, *, link_id: int, salt: str) -> str:
    """The token of a sign-in link: HMAC-SHA256 of the link's id and random salt under
    the console key (256 bits, URL-safe): derivable when the email is written, guessable
    by nobody, and never the same twice (a restored database reuses ids)."""
    digest = hmac.new(key, f"sign-in:{link_id}:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def create_sign_in_link(
    session: Session, *, user: User, key: bytes, now: datetime, lifetime: timedelta
) -> tuple[SignInLink, str]:
    """A new one-time sign-in link of the user, and its token (only its hash is kept)."""
    link = SignInLink(
        user_id=user.id,
        salt=secrets.token_urlsafe(16),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(link)
    session.flush()
    token = sign_in_token(key, link_id=link.id, salt=link.salt)
    link.token_hash = hash_token(token)
    session.flush()
    return link, token


def sign_in_links_since(session: Session, *, user: User, since: datetime) -> int:
    """How many sign-in links the user was given since then (to bound emails)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(SignInLink)
            .where(SignInLink.user_id == user.id, SignInLink.created_at >= since)
        )
        or 0
    )


def use_sign_in_link(session: Session, *, token: str, now: datetime) -> User:
    """The user of a valid link, which is used up by this call (one conditional update:
    two clicks at once sign in once); `NotAuthenticated` if unknown, used or expired, or
    if its user was deactivated."""
    used = session.execute(
        update(SignInLink)
        .where(
            SignInLink.token_hash == hash_token(token),
            SignInLink.used_at.is_(None),
            SignInLink.expires_at > now,
        )
        .values(used_at=now)
        .returning(SignInLink.user_id)
        .execution_options(synchronize_session=False)
    ).first()
    if used is None:
        raise NotAuthenticated("this sign-in link is unknown, used or expired")
    user = session.get(User, used.user_id)
    if user is None or user.deactivated_at is not None:
        raise NotAuthenticated("this sign-in link is unknown, used or expired")
    return user


def open_session(session: Session, *, user: User, now: datetime, lifetime: timedelta) -> str:
    """A new console session of the user; the cookie's value (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            user_id=user.id,
            token_hash=hash_token(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


@dataclass(frozen=True)
class SignedIn:
    """A live console session: who, and when the session was last used."""

    principal: Principal
    session_id: int
    last_seen_at: datetime


def session_user(session: Session, *, token: str, now: datetime, idle: timedelta) -> SignedIn:
    """Who a session cookie belongs to, or `NotAuthenticated`: unknown, ended, idle for
    longer than `idle`, past its end, or its user deactivated."""
    row = session.execute(
        _SELECT_SESSION_USER,
        {"token_hash": hash_token(token), "now": now, "idle_since": now - idle},
    ).first()
    if row is None:
        raise NotAuthenticated("signed out, or the session has ended")
    role = Role(row.role)
    site_ids: frozenset[int] = frozenset()
    if is_site_scoped(role):
        site_ids = frozenset(session.scalars(_SELECT_SITES, {"user_id": row.id}))
    principal = Principal(id=row.id, email=row.email, role=role, site_ids=site_ids)
    return SignedIn(principal, row.session_id, row.last_seen_at)


_SELECT_SESSION_USER = (
    select(
        User.id,
        User.email,
        User.role,
        ConsoleSession.id.label("session_id"),
        ConsoleSession.last_seen_at,
    )
    .join(ConsoleSession, ConsoleSession.user_id == User.id)
    .where(
        ConsoleSession.token_hash == bindparam("token_hash"),
        ConsoleSession.ended_at.is_(None),
        ConsoleSession.expires_at > bindparam("now"),
        ConsoleSession.last_seen_at > bindparam("idle_since"),
        User.deactivated_at.is_(None),
    )
)


def touch_session(session: Session, *, session_id: int, now: datetime) -> None:
    """Record that the session was used now (its idle time starts again)."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.id == session_id, ConsoleSession.last_seen_at < now)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def end_session(session: Session, *, session_id: int, now: datetime) -> None:
    """End one console session (sign-out)."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.id == session_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )


def end_sessions(session: Session, *, user: User, now: datetime) -> int:
    """End every console session of the user, and use up their unused sign-in links;
    return how many sessions were open."""
    session.execute(
        update(SignInLink)
        .where(SignInLink.user_id == user.id, SignInLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    ended = session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user.id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(ended, "rowcount", 0) or 0)
