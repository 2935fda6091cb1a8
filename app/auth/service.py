"""Users and tokens: creation, and finding who a bearer token belongs to."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import ApiToken, User, UserSite
from app.auth.permissions import SITE_SCOPED_ROLES, Role
from app.auth.principal import Principal
from app.auth.schemas import SiteAccess, UserRead
from app.errors import EmailTaken, FieldProblem, InvalidInput, NotAuthenticated
from app.studies.models import Site, Study

TOKEN_PREFIX = "td_"


def hash_token(token: str) -> str:
    """SHA-256 of a token: a 256-bit random token needs no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: Role,
    sites: Sequence[SiteAccess],
    actor: Principal | None,
    now: datetime,
) -> tuple[User, str]:
    """Create a user with its site access; return the user and its new token."""
    email = email.strip().lower()
    problems: list[FieldProblem] = []
    if sites and role not in SITE_SCOPED_ROLES:
        problems.append(FieldProblem(("sites",), f"the {role} role is not limited to sites"))
    resolved: list[Site] = []
    for i, access in enumerate(sites):
        site = session.scalars(
            select(Site).join(Study).where(Study.slug == access.study, Site.code == access.site)
        ).first()
        if site is None:
            exists = session.scalar(select(Study.id).where(Study.slug == access.study))
            field = "site" if exists else "study"
            problems.append(FieldProblem(("sites", i, field), f"no such {field}"))
        else:
            resolved.append(site)
    if problems:
        raise InvalidInput(problems)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(f"a user with email {email} exists")
    user = User(email=email, name=name, role=role, created_at=now)
    user.site_links = [UserSite(site=site) for site in dict.fromkeys(resolved)]
    session.add(user)
    session.flush()
    token = issue_token(session, user=user, now=now)
    audit.record(
        session,
        actor=actor,
        action="user.created",
        entity_type="user",
        entity_id=user.id,
        now=now,
        changes={
            "email": audit.change(None, email),
            "role": audit.change(None, str(role)),
            "sites": audit.change(None, [f"{s.study.slug}:{s.code}" for s in resolved]),
        },
    )
    return user, token


def issue_token(session: Session, *, user: User, now: datetime) -> str:
    """A new API token for the user; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), created_at=now))
    session.flush()
    return token


def authenticate(session: Session, *, token: str) -> Principal:
    """Who a bearer token belongs to, or `NotAuthenticated` (one or two small queries)."""
    row = session.execute(_SELECT_TOKEN_USER, {"token_hash": hash_token(token)}).first()
    if row is None:
        raise NotAuthenticated("missing or unknown token")
    sites: list[tuple[int, int]] = []
    if row.role in SITE_SCOPED_ROLES:
        sites = [
            (site, study) for site, study in session.execute(_SELECT_SITES, {"user_id": row.id})
        ]
    return Principal(
        id=row.id,
        email=row.email,
        role=Role(row.role),
        site_ids=frozenset(site for site, _ in sites),
        study_ids=frozenset(study for _, study in sites),
    )


# Built once: every request authenticates.
_SELECT_TOKEN_USER = (
    select(User.id, User.email, User.role)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)
_SELECT_SITES = (
    select(Site.id, Site.study_id)
    .join(UserSite, UserSite.site_id == Site.id)
    .where(UserSite.user_id == bindparam("user_id"))
)


def principal_of(user: User) -> Principal:
    """The principal of a user row (for set-up code that acts as a user it just made)."""
    return Principal(
        id=user.id,
        email=user.email,
        role=Role(user.role),
        site_ids=frozenset(link.site_id for link in user.site_links),
        study_ids=frozenset(link.site.study_id for link in user.site_links),
    )


def find_user(session: Session, *, email: str) -> User | None:
    """The user with this email, if any."""
    return session.scalars(select(User).where(User.email == email.strip().lower())).first()


def get_user(session: Session, *, user_id: int) -> User:
    """A user by id (the caller's own record, say)."""
    return session.get_one(User, user_id)


def user_read(user: User) -> UserRead:
    """The public view of a user."""
    return UserRead(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        sites=[
            SiteAccess(study=link.site.study.slug, site=link.site.code) for link in user.site_links
        ],
    )
