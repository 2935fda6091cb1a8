"""The console's administration pages, one module per area: users (their sites and
tokens), studies (creation from a definition file, simulation, activation, lock), amendments
(a new consent version) and the audit trail."""

from __future__ import annotations

from fastapi import APIRouter

from app.console import amend, audit, studies, users

# The areas' routes themselves (not included routers), so that `router.routes` lists them.
router = APIRouter(
    routes=[route for area in (users, studies, amend, audit) for route in area.router.routes]
)
