"""The request's transaction, and the clock: the dependencies every router shares.

One transaction per request, owned by `SessionDep`: FastAPI opens it before the endpoint
and, because the dependency has `scope="function"`, commits it as soon as the endpoint
(and the serialization of its answer) is done, before the response is sent. So a failed
commit is an error answer, never a success the database forgot. Services `flush()` and
never `commit()`. Whether a request writes is declared by the session it asks for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.orm import Session

from app.db.engine import Database
from app.errors import Busy
from app.metrics import WAITS


async def request_slot(request: Request) -> AsyncIterator[None]:
    """Wait for one of this process's request slots (503 after a while), and hold it
    until the answer is ready.

    Requests waiting for a lock each block a worker thread; keeping them fewer than the
    thread pool leaves threads for the other steps of every request, and keeps within
    the connection pool. Taken after the body is read, so a slow client holds none;
    operational routes (`/healthz`, `/readyz`, `/metrics`) take none.
    """
    slots: asyncio.Semaphore = request.app.state.request_slots
    try:
        with WAITS.labels("request_slot").time():
            async with asyncio.timeout(request.app.state.settings.request_slot_timeout_s):
                await slots.acquire()
    except TimeoutError:
        raise Busy("every request slot of this process is taken; try again") from None
    try:
        yield
    finally:
        slots.release()


def get_session(request: Request) -> Iterator[Session]:
    """The request's session, for endpoints that change something; committed when the
    endpoint returns, rolled back if it raises.

    With SQLite, the transaction takes the database's write lock at its first statement
    (BEGIN IMMEDIATE, behind this process's write gate: see `db.engine`), so concurrent
    writers wait in line instead of failing.
    """
    db: Database = request.app.state.db
    with db.session(write=True) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_read_session(request: Request) -> Iterator[Session]:
    """The request's session, for endpoints that only read."""
    db: Database = request.app.state.db
    with db.session(write=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
RequestSlot = Depends(request_slot, scope="function")


def send_soon(request: Request, background: BackgroundTasks) -> None:
    """Have this process's scheduler send what the request queued (a safety alert, a
    serious event's email) as soon as the response is sent, after the commit, rather
    than at its next pass (up to `scheduler_interval_s` later); nothing without one."""
    wake = getattr(request.app.state, "wake_scheduler", None)
    if wake is not None:
        background.add_task(wake)


async def get_base_url(request: Request) -> str:
    """The public address links are built on (`TRIALDESK_BASE_URL`), never the Host the
    request named."""
    base: str = request.app.state.settings.base_url
    return base


BaseUrl = Annotated[str, Depends(get_base_url)]
