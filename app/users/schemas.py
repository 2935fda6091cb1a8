"""User API schemas."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.auth.models import User
from app.auth.principal import Role


class SiteAccess(BaseModel):
    model_config = ConfigDict(extra="forbid")

    study: str = Field(min_length=1, max_length=64, description="study slug")
    site: str = Field(min_length=1, max_length=12, description="site code within the study")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[EmailStr, Field(max_length=320)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    sites: list[SiteAccess] = Field(default=[], max_length=200, description="coordinators only")


class UserRead(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    sites: list[SiteAccess]
    active: bool = Field(description="false once deactivated: every token is refused")
    deactivated_at: datetime | None


class UserCreated(UserRead):
    # Not kept for Idempotency-Key replays either: a replay answers with `token: null`.
    shown_once: ClassVar[tuple[str, ...]] = ("token",)

    token: str | None = Field(description="the API token; shown once, only its hash is kept")
    token_expires_at: datetime


class TokenIssued(BaseModel):
    shown_once: ClassVar[tuple[str, ...]] = ("token",)

    token: str | None = Field(description="the new API token; shown once (a replay: null)")
    expires_at: datetime


class Deactivation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


def user_read(user: User, sites: Iterable[tuple[str, str]]) -> UserRead:
    """The public view of a user, with its (study slug, site code) pairs."""
    return UserRead(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        sites=[SiteAccess(study=study, site=site) for study, site in sites],
        active=user.deactivated_at is None,
        deactivated_at=user.deactivated_at,
    )
