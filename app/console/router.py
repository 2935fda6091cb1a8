"""The staff console's study pages, one module per area: the dashboard (and the home
page), reports, enrollment, participants (the list and record page, what is done to one
participant, leaving the study, staff data entry and corrections), the worklist, adverse
events, incentives and exports. Each page calls the services the API calls, with the
signed-in user as the actor: no rule, permission or blinding decision of its own.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.console import (
    applicants,
    calls,
    consents,
    contacts,
    dashboard,
    deviations,
    dsmb,
    enroll,
    entry,
    events,
    exports,
    incentives,
    leaving,
    participant_actions,
    participants,
    reports,
    texts,
    worklist,
)

# The areas' routes themselves (not included routers), so that `router.routes` lists them.
router = APIRouter(
    routes=[
        route
        for area in (
            dashboard,
            reports,
            dsmb,
            enroll,
            participants,
            participant_actions,
            consents,
            contacts,
            leaving,
            entry,
            worklist,
            texts,
            deviations,
            incentives,
            applicants,
            calls,
            events,
            exports,
        )
        for route in area.router.routes
    ]
)
