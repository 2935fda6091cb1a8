"""`/healthz` and `/readyz`: for load balancers and orchestrators, never queued behind
the requests (no request slot, no pooled connection), and always answered in seconds."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app.db.engine import Database
from app.db.schema import current_revision, head_revision

PROBE_TIMEOUT_S = 5.0


def operations_router(db: Database) -> APIRouter:
    """The operational routes of the application whose database is `db`."""
    router = APIRouter(tags=["operations"])

    def database_revision() -> str | None:
        with db.probe.connect() as connection:
            connection.execute(text("SELECT 1"))
            return current_revision(connection)

    async def probe() -> tuple[bool, str | None]:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                return True, await run_in_threadpool(database_revision)
        except Exception:  # any failure to answer means: not healthy
            return False, None

    @router.get(
        "/healthz",
        responses={503: {"description": "the database does not answer"}},
    )
    async def healthz() -> JSONResponse:
        """200 when the process is up and the database answers."""
        answers, _ = await probe()
        if not answers:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        responses={503: {"description": "no database, or its schema is not at head"}},
    )
    async def readyz() -> JSONResponse:
        """200 when the database answers and its migrations are at head, else 503."""
        answers, revision = await probe()
        head = head_revision()
        ready = answers and revision == head
        body = {"status": "ready" if ready else "not ready", "revision": revision, "head": head}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
