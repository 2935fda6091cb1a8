"""Randomizing, unblinding, and the allocation ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from app.api.deps import NowDep, PageDep, ReadSessionDep, SessionDep, require
from app.api.errors import PROBLEM_RESPONSES
from app.api.routing import TransactionalRoute
from app.auth.permissions import Permission, may_see_arms
from app.auth.principal import Principal
from app.errors import Forbidden
from app.randomization import service
from app.randomization.schemas import (
    AllocationList,
    AllocationRead,
    RandomizeResult,
    SimulationRequest,
    UnblindRequest,
    UnblindResult,
)
from app.randomization.simulation import SimulationResult
from app.studies.schemas import AllocationTableLoaded
from app.studies.service import definition_of, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["randomization"],
    route_class=TransactionalRoute,
    responses=PROBLEM_RESPONSES,
)


@router.post("/participants/{code}/randomize", response_model=RandomizeResult)
def randomize(
    slug: str,
    code: str,
    session: SessionDep,
    now: NowDep,
    actor: Annotated[Principal, Depends(require(Permission.randomize))],
) -> RandomizeResult:
    """Allocate the next slot of the participant's stratum; 409 if already randomized."""
    study = get_study(session, slug=slug, user=actor, lock="share")
    participant, allocation = service.randomize(
        session, study=study, code=code, actor=actor, now=now
    )
    definition = definition_of(study)
    visible = may_see_arms(actor.role, definition.blinding.arm_visible_to)
    assert participant.stratum is not None and participant.randomized_at is not None
    return RandomizeResult(
        code=participant.code,
        status=participant.status,
        stratum=participant.stratum,
        randomized_at=participant.randomized_at,
        arm=allocation.arm if visible else None,
        arm_label=service.arm_label(definition, allocation.arm) if visible else None,
    )


@router.post("/participants/{code}/unblind", response_model=UnblindResult)
def unblind(
    slug: str,
    code: str,
    body: UnblindRequest,
    session: SessionDep,
    now: NowDep,
    actor: Annotated[Principal, Depends(require(Permission.unblind))],
) -> UnblindResult:
    """Reveal one participant's arm; the reason is written to the audit trail."""
    study = get_study(session, slug=slug, user=actor, lock="share")
    participant, allocation = service.unblind(
        session, study=study, code=code, reason=body.reason, actor=actor, now=now
    )
    return UnblindResult(
        code=participant.code,
        arm=allocation.arm,
        arm_label=service.arm_label(definition_of(study), allocation.arm),
    )


@router.get("/allocations", response_model=AllocationList)
def list_allocations(
    slug: str,
    session: ReadSessionDep,
    page: PageDep,
    user: Annotated[Principal, Depends(require(Permission.read_allocations))],
) -> AllocationList:
    """The allocation ledger, in allocation order."""
    study = get_study(session, slug=slug, user=user)
    definition = definition_of(study)
    if not may_see_arms(user.role, definition.blinding.arm_visible_to):
        raise Forbidden(f"this study does not show arms to the {user.role} role")
    rows = service.list_allocations(session, study=study, after_id=page.after, limit=page.limit)
    return AllocationList(
        items=[
            AllocationRead(
                participant=code,
                stratum=allocation.stratum.key,
                block=allocation.block,
                block_size=allocation.block_size,
                position=allocation.position,
                sequence=allocation.sequence,
                arm=allocation.arm,
                arm_label=service.arm_label(definition, allocation.arm),
                randomized_at=allocation.randomized_at,
                randomized_by=email,
            )
            for allocation, code, email in rows
        ],
        next=page.next_url(count=len(rows), last_id=rows[-1][0].id if rows else None),
    )


@router.post("/simulate", response_model=SimulationResult)
def simulate(
    slug: str,
    body: SimulationRequest,
    session: ReadSessionDep,
    user: Annotated[Principal, Depends(require(Permission.manage_studies))],
) -> SimulationResult:
    """Simulate enrollment with throw-away secrets: expected and worst imbalance per arm,
    overall and per stratum, and how often the next allocation could be guessed."""
    study = get_study(session, slug=slug, user=user)
    return service.simulate_study(study=study, request=body)


@router.put("/allocation-table", response_model=AllocationTableLoaded)
def load_allocation_table(
    slug: str,
    content: Annotated[
        str,
        Body(
            media_type="text/csv",
            description="CSV: stratum,sequence,arm[,block,block_size,position]",
        ),
    ],
    session: SessionDep,
    now: NowDep,
    actor: Annotated[Principal, Depends(require(Permission.manage_studies))],
) -> AllocationTableLoaded:
    """Load the allocation table of a draft study that uses the `table` method."""
    study = get_study(session, slug=slug, user=actor, lock="share")
    rows, strata, digest = service.load_allocation_table(
        session, study=study, text=content, actor=actor, now=now
    )
    return AllocationTableLoaded(rows=rows, strata=strata, sha256=digest)
