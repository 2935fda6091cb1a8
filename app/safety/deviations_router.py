"""Protocol deviations: recorded per participant, listed and read per study, followed up,
and proposals confirmed or dismissed (SPEC 9; API.md "Added in the second release")."""

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
from app.idempotency.deps import IdempotencyDep
from app.safety import deviations as service
from app.safety.deviation_rules import DeviationState
from app.safety.deviation_schemas import (
    DeviationCreate,
    DeviationList,
    DeviationRead,
    DeviationVersionCreate,
    ProposalsMade,
)
from app.studies.service import RowLock, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["safety"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

Recorder = Annotated[Principal, Depends(require(Permission.record_safety))]
Reader = Annotated[Principal, Depends(require(Permission.read_safety))]
DeviationId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the deviation's id")]


@router.post("/participants/{code}/deviations", status_code=201, response_model=DeviationRead)
def record_deviation(
    slug: SlugPath,
    code: CodePath,
    body: DeviationCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Recorder,
) -> Response:
    """Record a protocol deviation of the participant (confirmed: staff found it)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    recorded = service.record_deviation(session, study=study, code=code, data=body, actor=actor)
    return idempotency.remember(recorded)


@router.get("/deviations", response_model=DeviationList)
def list_deviations(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    page: PageDep,
    state: DeviationState | None = None,
    participant: Annotated[str | None, Query(max_length=32, description="code")] = None,
) -> DeviationList:
    """Deviations at the caller's sites (every site for admins and safety reviewers),
    oldest first."""
    study = get_study(session, slug=slug, user=user)
    rows = service.list_deviations(
        session,
        study=study,
        user=user,
        state=state,
        participant=participant,
        after_id=page.after,
        limit=page.limit,
    )
    return DeviationList(
        items=rows, next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None)
    )


@router.post("/deviations/propose", response_model=ProposalsMade)
def propose_deviations(
    slug: SlugPath, session: SessionDep, idempotency: IdempotencyDep, actor: Recorder
) -> Response:
    """Look now for what the scheduler proposes at each pass (surveys done after their
    window closed), at the caller's sites; each finding is proposed once."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    count = service.look_for_deviations(session, study=study, actor=actor)
    return idempotency.remember(ProposalsMade(proposed=count))


@router.get("/deviations/{deviation_id}", response_model=DeviationRead)
def get_deviation(
    slug: SlugPath, deviation_id: DeviationId, session: ReadSessionDep, user: Reader
) -> DeviationRead:
    """One deviation with every version, oldest first."""
    study = get_study(session, slug=slug, user=user)
    return service.get_deviation(session, study=study, deviation_id=deviation_id, user=user)


@router.post("/deviations/{deviation_id}/versions", status_code=201, response_model=DeviationRead)
def add_version(
    slug: SlugPath,
    deviation_id: DeviationId,
    body: DeviationVersionCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Recorder,
) -> Response:
    """The next version: a follow-up, or the confirmation or dismissal of a proposal."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    changed = service.add_version(
        session, study=study, deviation_id=deviation_id, data=body, actor=actor
    )
    return idempotency.remember(changed)
