"""Users: created by admins; anyone can ask who they are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.auth import service as auth
from app.auth.deps import STAFF_ROUTES, CurrentUser, TokenLifetime, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.idempotency.deps import IdempotencyDep
from app.users import service
from app.users.schemas import (
    Deactivation,
    TokenIssued,
    UserCreate,
    UserCreated,
    UserRead,
    user_read,
)

router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,  # a route that takes more says so (413 beyond)
    dependencies=STAFF_ROUTES,
)


Admin = Annotated[Principal, Depends(require(Permission.manage_users))]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the user's id")]


@router.post("", status_code=201, response_model=UserCreated)
def create_user(
    body: UserCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    lifetime: TokenLifetime,
    actor: Admin,
) -> Response:
    """Create a user; the token is in this answer only."""
    user, token = service.create_user(
        session,
        email=body.email,
        name=body.name,
        role=body.role,
        sites=body.sites,
        actor=actor,
        token_lifetime=lifetime,
    )
    read = user_read(user, service.sites_of(session, user=user))
    created = UserCreated(**read.model_dump(), token=token.token, token_expires_at=token.expires_at)
    return idempotency.remember(created)


@router.get("/me", response_model=UserRead)
def who_am_i(user: CurrentUser, session: ReadSessionDep) -> UserRead:
    """The caller's own record: role and sites."""
    record = auth.get_user(session, user_id=user.id)
    return user_read(record, service.sites_of(session, user=record))


@router.post("/{user_id}/tokens", status_code=201, response_model=TokenIssued)
def issue_token(
    user_id: UserId,
    session: SessionDep,
    idempotency: IdempotencyDep,
    lifetime: TokenLifetime,
    actor: Admin,
) -> Response:
    """A new token for the user (rotation); older ones stay valid until revoked or expired."""
    user = auth.get_user(session, user_id=user_id)
    token = service.issue_token(session, user=user, actor=actor, token_lifetime=lifetime)
    return idempotency.remember(TokenIssued(token=token.token, expires_at=token.expires_at))


@router.delete("/{user_id}/tokens", status_code=204, response_class=Response)
def revoke_tokens(user_id: UserId, session: SessionDep, actor: Admin) -> Response:
    """Refuse every token of the user (401) from now on."""
    service.revoke_tokens(session, user=auth.get_user(session, user_id=user_id), actor=actor)
    return Response(status_code=204)


@router.post("/{user_id}/deactivate", response_model=UserRead)
def deactivate(
    user_id: UserId,
    body: Deactivation,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Admin,
) -> Response:
    """Refuse the user's tokens (401) at once and from now on; the reason is audited."""
    user = auth.get_user(session, user_id=user_id)
    user = service.deactivate(session, user=user, actor=actor, reason=body.reason)
    return idempotency.remember(user_read(user, service.sites_of(session, user=user)))
