"""The console's administration pages: users, their sites and tokens; study creation
from a definition file, simulation, activation and lock; the audit trail."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.api.deps import RequestSlot
from app.console.deps import PREFIX, ConsoleRoute

router = APIRouter(
    prefix=PREFIX,
    tags=["console"],
    route_class=ConsoleRoute,
    default_response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=[RequestSlot],
)
