"""What every router shares: the session, the caller, permission checks, the clock, paging."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.api.routing import UNIT
from app.auth import service as auth_service
from app.auth.permissions import Permission, has_permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.db.engine import Database
from app.errors import FieldProblem, Forbidden, InvalidInput, NotAuthenticated

# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in a
# worker thread, and every hop there costs time while the request holds its locks.


def _open_session(request: Request, *, write: bool) -> Session:
    unit = request.state.unit
    unit.write = write
    session = unit.db.session(write=write)
    session.info[UNIT] = unit
    request.state.session = session
    return session


async def get_session(request: Request) -> Session:
    """The request's session, for endpoints that change something: its transaction takes
    the write lock at BEGIN, and `TransactionalRoute` commits it after the endpoint."""
    return _open_session(request, write=True)


async def get_read_session(request: Request) -> Session:
    """The request's session, for endpoints that only read."""
    return _open_session(request, write=False)


async def get_now() -> datetime:
    """The server clock, read once per request and passed to the services."""
    return utcnow()


SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
NowDep = Annotated[datetime, Depends(get_now)]

_bearer = HTTPBearer(auto_error=False, description="API token")


def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <token>`; 401 when missing or unknown.

    Read in a short transaction of its own, so the request's transaction (and its
    locks) begins only in the endpoint.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("send Authorization: Bearer <token>")
    db: Database = request.app.state.db
    with db.session(write=False) as session:
        return auth_service.authenticate(session, token=credentials.credentials)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency that lets the caller through only if their role has the permission."""

    async def check(user: CurrentUser) -> Principal:
        if not has_permission(user.role, permission):
            raise Forbidden(f"the {user.role} role may not {permission.replace('_', ' ')}")
        return user

    check.__name__ = f"require_{permission}"
    return check


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = text.split(":", 1)
        number = int(value)
        if version != "v1" or not 0 <= number < 2**63:
            raise ValueError
        return number
    except ValueError:
        raise InvalidInput(
            [FieldProblem(("cursor",), "not a cursor this API gave")], part="query"
        ) from None


class Page:
    """`?limit=&cursor=` of a list, and the `next` link that keeps the other filters."""

    def __init__(self, request: Request, limit: int, after: int) -> None:
        self.request = request
        self.limit = limit
        self.after = after

    def next_url(self, *, count: int, last_id: int | None) -> str | None:
        """The URL of the next page, or None when this page was the last."""
        if count < self.limit or last_id is None:
            return None
        return str(self.request.url.include_query_params(cursor=encode_cursor(last_id)))


async def get_page(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="opaque; from `next`")] = None,
) -> Page:
    return Page(request, limit, decode_cursor(cursor))


PageDep = Annotated[Page, Depends(get_page)]
