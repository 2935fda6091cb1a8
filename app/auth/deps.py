"""Who is calling, and whether their role may: the dependencies every router uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.body import refuse_bad_input
from app.api.deps import RequestSlot
from app.api.ratelimit import FailureLimiter
from app.auth import service
from app.auth.permissions import Permission, has_permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.db.engine import Database
from app.errors import Forbidden, NotAuthenticated

_bearer = HTTPBearer(auto_error=False, description="API token")


def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <token>`; 401 when missing, unknown,
    expired or revoked; 429 in place of the 401 for an address that sent too many bad
    tokens (a valid token is always accepted).

    Read in a short transaction of its own, so the request's transaction (and its
    locks) begins only in the endpoint.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("send Authorization: Bearer <token>")
    db: Database = request.app.state.db
    try:
        with db.session(write=False) as session:
            return service.authenticate(session, token=credentials.credentials, now=utcnow())
    except NotAuthenticated:
        # Only failures are slowed down: a valid token is never refused because someone
        # else behind the same address (a hospital's NAT, a proxy) sent bad ones.
        limiter: FailureLimiter = request.app.state.bad_tokens
        address = request.client.host if request.client else "unknown"
        limiter.check(address)
        limiter.failed(address)
        raise


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def token_lifetime(request: Request) -> timedelta:
    """How long a new staff token is valid (`TRIALDESK_TOKEN_LIFETIME_DAYS`)."""
    return timedelta(days=request.app.state.settings.token_lifetime_days)


TokenLifetime = Annotated[timedelta, Depends(token_lifetime)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the caller through only if their role has the permission."""

    # `async`: it does no I/O, and FastAPI would run a plain `def` in a worker thread.
    async def check(user: CurrentUser) -> Principal:
        if not has_permission(user.role, permission):
            raise Forbidden(f"the {user.role} role may not {permission.replace('_', ' ')}")
        return user

    check.__name__ = f"require_{permission}"
    return check


# What every staff route depends on, in this order: a request slot, then the caller
# (401 before anything else about the request), then the body's checks (422).
STAFF_ROUTES = [RequestSlot, Depends(get_current_user), Depends(refuse_bad_input)]
