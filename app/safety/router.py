"""Adverse events as JSON (SPEC 9): opening one, its versions, its reporting deadlines,
the due list, and acknowledging a safety alert with what followed it (here rather than
with the alerts' list: opening an event from it needs this package, above surveys)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.paging import PageDep
from app.api.params import CodePath, SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.idempotency.deps import IdempotencyDep
from app.randomization import blinding
from app.safety import service
from app.safety.schemas import (
    AlertAcknowledged,
    AlertAcknowledgement,
    DeadlineReport,
    DueList,
    EventCreate,
    EventList,
    EventRead,
    EventReadReviewed,
    VersionCreate,
    alert_acknowledged,
    due_item,
    event_read,
    event_summary,
)
from app.studies.models import Study
from app.studies.service import RowLock, definition_of, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["safety"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

Reader = Annotated[Principal, Depends(require(Permission.read_safety))]
EventId = Annotated[int, Path(ge=1, le=2**31 - 1)]
AnyEventRead = EventReadReviewed | EventRead


def _arms(study: Study, user: Principal) -> bool:
    return blinding.policy_for(user.role, definition_of(study)).arms


@router.post(
    "/participants/{code}/events", status_code=201, response_model=EventReadReviewed | EventRead
)
def open_event(
    slug: SlugPath,
    code: CodePath,
    body: EventCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Annotated[Principal, Depends(require(Permission.record_safety))],
) -> Response:
    """Open an adverse event with its initial report (version 1); its reporting deadlines
    come back in `due`. With `alert`, that alert is acknowledged and linked."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    view = service.open_event(session, study=study, code=code, data=body, actor=actor)
    return idempotency.remember(event_read(view, arms=_arms(study, actor), now=utcnow()))


@router.get("/events", response_model=EventList)
def list_events(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    page: PageDep,
    participant: Annotated[str | None, Query(max_length=32, description="participant code")] = None,
    serious: Annotated[bool | None, Query(description="only serious (or not serious)")] = None,
    open_only: Annotated[
        bool | None, Query(alias="open", description="only open (true) or closed (false)")
    ] = None,
) -> EventList:
    """Adverse events of the caller's sites, in the order they were opened."""
    study = get_study(session, slug=slug, user=user)
    views = service.list_events(
        session,
        study=study,
        user=user,
        after_id=page.after,
        limit=page.limit,
        participant=participant,
        serious=serious,
        open_only=open_only,
    )
    now = utcnow()
    return EventList(
        items=[event_summary(v, now=now) for v in views],
        next=page.next_url(count=len(views), last_id=views[-1].event.id if views else None),
    )


@router.get("/events/{event_id}", response_model=AnyEventRead)
def get_event(
    slug: SlugPath, event_id: EventId, session: ReadSessionDep, user: Reader
) -> AnyEventRead:
    """One event with every version and its deadlines; a medical review's fields only for
    roles that may see arms."""
    study = get_study(session, slug=slug, user=user)
    view = service.get_event(session, study=study, event_id=event_id, user=user)
    return event_read(view, arms=_arms(study, user), now=utcnow())


@router.post("/events/{event_id}/versions", status_code=201, response_model=AnyEventRead)
def add_version(
    slug: SlugPath,
    event_id: EventId,
    body: VersionCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Reader,
) -> Response:
    """Add the next version: a follow-up (default) or the closure (coordinators, admins),
    or a medical review (roles that review safety and may see arms)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    view = service.add_version(session, study=study, event_id=event_id, data=body, actor=actor)
    return idempotency.remember(event_read(view, arms=_arms(study, actor), now=utcnow()))


@router.post("/events/{event_id}/deadlines/{code}/report", response_model=AnyEventRead)
def report_deadline(
    slug: SlugPath,
    event_id: EventId,
    code: Annotated[str, Path(max_length=64)],
    body: DeadlineReport,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Reader,
) -> Response:
    """Record a deadline met: reported on that day, with the recipient's reference."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    view = service.report_deadline(
        session,
        study=study,
        event_id=event_id,
        code=code,
        reported_on=body.reported_on,
        reference=body.reference,
        actor=actor,
    )
    return idempotency.remember(event_read(view, arms=_arms(study, actor), now=utcnow()))


@router.get("/safety/due", response_model=DueList)
def due(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DueList:
    """Reporting deadlines that apply and are not met, at the caller's sites, the one due
    first at the top (overdue ones are flagged)."""
    study = get_study(session, slug=slug, user=user)
    rows = service.due(session, study=study, user=user, limit=limit)
    now = utcnow()
    return DueList(items=[due_item(r, now=now) for r in rows], next=None)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertAcknowledged)
def acknowledge_alert(
    slug: SlugPath,
    alert_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: AlertAcknowledgement,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Annotated[Principal, Depends(require(Permission.acknowledge_alerts))],
) -> Response:
    """Record what followed the alert: `no_event` (with a note), or `event` (an adverse
    event opened from it, prefilled; `event` completes the prefill). Audited."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    done = service.acknowledge_alert(
        session, study=study, alert_id=alert_id, body=body, actor=actor
    )
    sites = {s.id: s.code for s in study.sites}
    shown = alert_acknowledged(done.alert, site=sites[done.alert.site_id], event=done.event)
    return idempotency.remember(shown)
