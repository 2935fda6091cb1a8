"""Users: created by admins; anyone can ask who they are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.auth import service as auth
from app.auth.deps import STAFF_ROUTES, CurrentUser, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.idempotency.deps import IdempotencyDep
from app.users import service
from app.users.schemas import UserCreate, UserCreated, UserRead, user_read

router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,  # a route that takes more says so (413 beyond)
    dependencies=STAFF_ROUTES,
)


@router.post("", status_code=201, response_model=UserCreated)
def create_user(
    body: UserCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Annotated[Principal, Depends(require(Permission.manage_users))],
) -> UserCreated:
    """Create a user; the token is in this answer only."""
    user, token = service.create_user(
        session,
        email=body.email,
        name=body.name,
        role=body.role,
        sites=body.sites,
        actor=actor,
    )
    read = user_read(user, service.sites_of(session, user=user))
    return idempotency.remember(UserCreated(**read.model_dump(), token=token))


@router.get("/me", response_model=UserRead)
def who_am_i(user: CurrentUser, session: ReadSessionDep) -> UserRead:
    """The caller's own record: role and sites."""
    record = auth.get_user(session, user_id=user.id)
    return user_read(record, service.sites_of(session, user=record))
