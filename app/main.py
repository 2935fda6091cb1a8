"""The application: settings in, routers mounted, errors mapped, middleware around."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app import logging as app_logging
from app.api import docs, errors
from app.api.middleware import HttpEdge
from app.api.operations import operations_router
from app.api.ratelimit import FailureLimiter
from app.audit.router import router as audit_router
from app.config import Settings
from app.consent_admin.router import router as consent_router
from app.console import admin as console_admin
from app.console import deps as console_deps
from app.console import router as console
from app.console import signin as console_signin
from app.db.engine import Database
from app.engagement import router as engagement
from app.exports.router import router as exports_router
from app.idempotency import deps as idempotency
from app.incentives.router import router as incentives_router
from app.join import pages as join_pages
from app.join import reconsent as join_reconsent
from app.join import router as join_api
from app.join import steps as join_steps
from app.participants.router import router as participants_router
from app.participants.surveys_router import router as participant_surveys_router
from app.reports.router import router as reports_router
from app.retention import service as retention
from app.retention.router import router as retention_router
from app.safety.deviations_router import router as deviations_router
from app.safety.router import router as safety_router
from app.scheduler.runner import BackgroundScheduler
from app.studies import service as studies_service
from app.studies.router import router as studies_router
from app.surveys import pages as survey_pages
from app.surveys import router as surveys
from app.texting import router as texting
from app.users.router import router as users_router
from app.web.pages import mount_static

_frozen: list[bool] = []  # whether this process's start-up objects are frozen


def freeze_start_up_objects() -> None:
    """Once per process, after start-up: collect, then move every object that exists
    (modules, metadata, templates, the definition caches...) out of the garbage
    collector's sight. A full collection then walks only what requests made since: it
    walked some 200,000 long-lived objects, a 150 ms pause that was the console
    worklist's p99 (benchmarks/console.py)."""
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen.append(True)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for these settings (the environment's when none are given)."""
    settings = settings or Settings()
    app_logging.configure(settings.log_level)
    db = Database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Fail at start, not at first use, with a missing or wrong server key.
        await run_in_threadpool(db.check_server_key)
        scheduler = BackgroundScheduler(db) if settings.scheduler else None
        if scheduler is not None:
            scheduler.start()
            app.state.wake_scheduler = scheduler.wake.set  # a sign-in link to send now
        freeze_start_up_objects()
        yield
        if scheduler is not None:
            await run_in_threadpool(scheduler.shutdown)
        db.dispose()

    app = FastAPI(
        title="Trialdesk",
        version="0.1.0",
        summary="Randomized-trial management: enrollment, stratified block randomization",
        lifespan=lifespan,
        docs_url=None,  # served by `docs.install`, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.audit_trail_scope = studies_service.trail_scope  # the blinding policy's say
    studies_service.at_lock(retention.purge_alternate_contacts)  # SPEC 11: other people's data
    app.state.request_slots = asyncio.Semaphore(db.request_slots)
    app.state.bad_tokens = FailureLimiter(failures=settings.bad_tokens_per_minute, window_s=60)
    errors.install(app)
    idempotency.install(app)
    app.state.unknown_links = FailureLimiter(
        failures=settings.unknown_links_per_minute, window_s=60
    )
    for router in (
        users_router,
        studies_router,
        participants_router,
        participant_surveys_router,
        audit_router,
        surveys.links,
        surveys.staff,
        safety_router,
        survey_pages.router,
        exports_router,
        reports_router,
        deviations_router,
        retention_router,
        incentives_router,
        engagement.loads,
        engagement.router,
        texting.router,
        texting.webhooks,
        consent_router,
        console_signin.router,
        console.router,
        console_admin.router,
        join_steps.router,  # before the screening pages: `/join/a/{token}` is no study
        join_pages.router,
        join_reconsent.router,
        join_api.router,
    ):
        app.include_router(router)

    app.include_router(operations_router(db))
    docs.install(app)
    mount_static(app)
    app.add_middleware(
        HttpEdge,
        too_large_page=lambda scope: (
            survey_pages.too_large_page(scope) or console_deps.too_large_page(scope)
        ),
    )
    return app
