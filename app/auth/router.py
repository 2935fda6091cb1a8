"""Users: created by admins; anyone can ask who they are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import CurrentUser, NowDep, ReadSessionDep, SessionDep, require
from app.api.errors import PROBLEM_RESPONSES
from app.api.routing import TransactionalRoute
from app.auth import service
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.auth.schemas import UserCreate, UserCreated, UserRead

router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    route_class=TransactionalRoute,
    responses=PROBLEM_RESPONSES,
)


@router.post("", status_code=201, response_model=UserCreated)
def create_user(
    body: UserCreate,
    session: SessionDep,
    now: NowDep,
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
        now=now,
    )
    return UserCreated(**service.user_read(user).model_dump(), token=token)


@router.get("/me", response_model=UserRead)
def who_am_i(user: CurrentUser, session: ReadSessionDep) -> UserRead:
    """The caller's own record: role and sites."""
    return service.user_read(service.get_user(session, user_id=user.id))
