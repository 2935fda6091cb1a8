"""`/healthz`, `/readyz` and `/metrics`: for load balancers, orchestrators and
Prometheus. Never queued behind the requests (no request slot, no pooled connection),
always answered in seconds."""

from __future__ import annotations

import asyncio
import ipaddress

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app.db.engine import Database
from app.db.schema import current_revision, head_revision

PROBE_TIMEOUT_S = 5.0
LIVENESS_TIMEOUT_S = 3.0


def operations_router(db: Database) -> APIRouter:
    """The operational routes of the application whose database is `db`."""
    router = APIRouter(tags=["operations"])

    def database_revision() -> str | None:
        with db.probe.connect() as connection:
            connection.execute(text("SELECT 1"))
            return current_revision(connection)

    def database_answers() -> None:
        # `SELECT 1` reads no table: no lock another session holds can make it wait.
        with db.probe.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def probe() -> tuple[bool, str | None]:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                return True, await run_in_threadpool(database_revision)
        except Exception:  # any failure to answer means: not ready
            return False, None

    @router.get(
        "/healthz",
        responses={503: {"description": "the database does not answer"}},
    )
    async def healthz() -> JSONResponse:
        """Liveness: 200 when the process is up and the database answers `SELECT 1` within
        a few seconds. Reads no table, so a lock held by another session (a migration, a
        long `LOCK TABLE`) cannot fail it; `/readyz` reads the schema's revision and may
        then say not ready."""
        try:
            async with asyncio.timeout(LIVENESS_TIMEOUT_S):
                await run_in_threadpool(database_answers)
        except Exception:  # any failure to answer means: not alive
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

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
            404: {"description": "the caller's address is not allowed to read metrics"},
        },
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process, for the addresses
        `TRIALDESK_METRICS_ALLOWED_FROM` lists (by default this host only), never for a
        request a proxy forwarded (`X-Forwarded-For` or `Forwarded`) unless it lists `*`."""
        allowed: list[str] = request.app.state.settings.metrics_allowed_from
        address = request.client.host if request.client else ""
        # Through a reverse proxy on this host, every client would come from 127.0.0.1:
        # a request a proxy forwarded is not this host's, whatever its address.
        proxied = "x-forwarded-for" in request.headers or "forwarded" in request.headers
        if not _allowed(address, allowed) or (proxied and "*" not in allowed):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


def _allowed(address: str, networks: list[str]) -> bool:
    if "*" in networks:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)
