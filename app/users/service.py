"""Staff users: creation with their site access, and reading them back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth import service as auth
from app.auth.models import User, UserSite
from app.auth.permissions import is_site_scoped
from app.auth.principal import Principal, Role
from app.auth.service import IssuedToken
from app.errors import EmailTaken, FieldProblem, InvalidInput, LastAdmin
from app.studies.models import Site, Study
from app.users.schemas import SiteAccess


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: Role,
    sites: Sequence[SiteAccess],
    actor: Principal | None,
    token_lifetime: timedelta,
) -> tuple[User, IssuedToken]:
    """Create a user with its site access; return the user and its first token."""
    email = email.strip().lower()
    problems: list[FieldProblem] = []
    if sites and not is_site_scoped(role):
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
    now = audit.lock_chain_head(session).at
    user = User(email=email, name=name, role=role, created_at=now)
    user.site_links = [UserSite(site_id=site.id) for site in dict.fromkeys(resolved)]
    session.add(user)
    session.flush()
    token = auth.issue_token(session, user=user, now=now, lifetime=token_lifetime)
    audit.record(
        session,
        AuditAction.user_created,
        actor=actor,
        entity_id=user.id,
        changes={
            "email": (None, email),
            "role": (None, role),
            "sites": (None, [f"{s.study.slug}:{s.code}" for s in resolved]),
            "token_expires_at": (None, token.expires_at.isoformat()),
        },
    )
    return user, token


def issue_token(
    session: Session,
    *,
    user: User,
    actor: Principal | None,
    token_lifetime: timedelta,
    reason: str | None = None,
) -> IssuedToken:
    """A new token for the user (rotation: older ones stay valid until revoked)."""
    now = audit.lock_chain_head(session).at
    token = auth.issue_token(session, user=user, now=now, lifetime=token_lifetime)
    audit.record(
        session,
        AuditAction.token_issued,
        actor=actor,
        entity_id=user.id,
        reason=reason,
        changes={"expires_at": (None, token.expires_at.isoformat())},
    )
    return token


def revoke_tokens(session: Session, *, user: User, actor: Principal | None) -> int:
    """Refuse every token of the user from now on, and end their console sessions;
    return how many tokens were valid."""
    now = audit.lock_chain_head(session).at
    count = auth.revoke_tokens(session, user=user, now=now)
    # Revoking signs the user out of the console too: a lost laptop is dealt with at once.
    sessions = auth.end_sessions(session, user=user, now=now)
    audit.record(
        session,
        AuditAction.tokens_revoked,
        actor=actor,
        entity_id=user.id,
        changes={"valid_tokens": (count, 0), "console_sessions": (sessions, 0)},
    )
    return count


def deactivate(session: Session, *, user: User, actor: Principal | None, reason: str) -> User:
    """Refuse the user from now on (tokens included); the last active admin stays."""
    now = audit.lock_chain_head(session).at  # also serializes two admins deactivating
    if user.deactivated_at is not None:
        return user
    if user.role == Role.admin and _active_admins(session) <= 1:
        raise LastAdmin("deactivating the last active admin would lock everyone out")
    user.deactivated_at = now
    user.deactivation_reason = reason
    session.flush()
    audit.record(
        session,
        AuditAction.user_deactivated,
        actor=actor,
        entity_id=user.id,
        reason=reason,
        changes={"active": (True, False)},
    )
    return user


def _active_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.admin, User.deactivated_at.is_(None))
        )
        or 0
    )


def sites_of(session: Session, *, user: User) -> list[tuple[str, str]]:
    """The (study slug, site code) pairs the user is assigned to."""
    ids = [link.site_id for link in user.site_links]
    if not ids:
        return []
    rows = session.execute(
        select(Study.slug, Site.code)
        .select_from(Site)
        .join(Site.study)
        .where(Site.id.in_(ids))
        .order_by(Site.id)
    ).all()
    return [(slug, code) for slug, code in rows]


def list_users(
    session: Session, *, after_id: int, limit: int
) -> list[tuple[User, list[tuple[str, str]]]]:
    """Users in creation order after a cursor, each with its (study slug, site code) pairs."""
    users = session.scalars(
        select(User).where(User.id > after_id).order_by(User.id).limit(limit)
    ).all()
    ids = {link.site_id for user in users for link in user.site_links}
    names: dict[int, tuple[str, str]] = {}
    if ids:
        rows = session.execute(
            select(Site.id, Study.slug, Site.code)
            .select_from(Site)
            .join(Site.study)
            .where(Site.id.in_(ids))
        ).all()
        names = {site_id: (slug, code) for site_id, slug, code in rows}
    return [
        (user, [names[site_id] for site_id in sorted(link.site_id for link in user.site_links)])
        for user in users
    ]
