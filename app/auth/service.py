"""Tokens and authentication: who a bearer token belongs to."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, User, UserSite
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
