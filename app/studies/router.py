"""Studies, their sites, and study-wide randomization: the ledger, simulation, tables."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.paging import PageDep
from app.api.params import SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.idempotency.deps import IdempotencyDep
from app.randomization import service as randomization
from app.randomization import table
from app.randomization.simulation import SimulationResult
from app.studies import service
from app.studies.definition import StudyDefinition
from app.studies.deps import ArmsReader
from app.studies.schemas import (
    AllocationList,
    AllocationTableLoaded,
    AnyStudyRead,
    SimulationRequest,
    SiteCreate,
    SiteRead,
    StudyActivated,
    StudyList,
    StudyLockRead,
    allocation_reads,
    study_read,
)
from app.studies.service import RowLock

router = APIRouter(
    prefix="/api/v1/studies",
    tags=["studies"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,  # a route that takes more says so (413 beyond)
    dependencies=STAFF_ROUTES,
)

Admin = Annotated[Principal, Depends(require(Permission.manage_studies))]
Reader = Annotated[Principal, Depends(require(Permission.read_studies))]


@router.post("", status_code=201, response_model=AnyStudyRead)
def create_study(
    definition: StudyDefinition,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Admin,
) -> Response:
    """Create a draft study from a complete definition (validated before anything is stored)."""
    study = service.create_study(session, definition=definition, actor=actor)
    return idempotency.remember(study_read(service.describe(session, study=study, user=actor)))


@router.get("", response_model=StudyList)
def list_studies(session: ReadSessionDep, user: Reader, page: PageDep) -> StudyList:
    """Studies the caller may know of."""
    studies = service.list_studies(session, user=user, after_id=page.after, limit=page.limit)
    return StudyList(
        items=[study_read(service.describe(session, study=s, user=user)) for s in studies],
        next=page.next_url(count=len(studies), last_id=studies[-1].id if studies else None),
    )


@router.get("/{slug}", response_model=AnyStudyRead)
def get_study(slug: SlugPath, session: ReadSessionDep, user: Reader) -> AnyStudyRead:
    """One study; arms, block sizes and (after lock) the secret only for roles that may."""
    study = service.get_study(session, slug=slug, user=user)
    return study_read(service.describe(session, study=study, user=user))


@router.post("/{slug}/activate", response_model=StudyActivated)
def activate_study(
    slug: SlugPath, session: SessionDep, idempotency: IdempotencyDep, actor: Admin
) -> Response:
    """Open enrollment; randomization settings are fixed and the commitment published."""
    study = service.get_study(session, slug=slug, user=actor, lock=RowLock.for_update)
    study = service.activate_study(session, study=study, actor=actor)
    assert study.commitment is not None and study.activated_at is not None
    return idempotency.remember(
        StudyActivated(
            slug=study.slug,
            status=study.status,
            commitment=study.commitment,
            activated_at=study.activated_at,
        )
    )


@router.post("/{slug}/lock", response_model=StudyLockRead)
def lock_study(
    slug: SlugPath, session: SessionDep, idempotency: IdempotencyDep, actor: Admin
) -> Response:
    """Database lock: enrollment and randomization end, and the secret is revealed so
    anyone can re-derive the sequence and check it against the commitment."""
    study = service.get_study(session, slug=slug, user=actor, lock=RowLock.for_update)
    study = service.lock_study(session, study=study, actor=actor)
    assert study.locked_at is not None
    return idempotency.remember(
        StudyLockRead(
            slug=study.slug,
            status=study.status,
            commitment=study.commitment,
            locked_at=study.locked_at,
            secret=service.secret_of(session, study).hex(),
        )
    )


@router.post("/{slug}/sites", status_code=201, response_model=SiteRead)
def add_site(
    slug: SlugPath,
    body: SiteCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Admin,
) -> Response:
    """Add a site (its code is unique within the study)."""
    study = service.get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    site = service.add_site(session, study=study, code=body.code, name=body.name, actor=actor)
    return idempotency.remember(SiteRead(code=site.code, name=site.name))


@router.get("/{slug}/allocations", response_model=AllocationList, tags=["randomization"])
def list_allocations(
    slug: SlugPath, session: ReadSessionDep, page: PageDep, user: ArmsReader
) -> AllocationList:
    """The allocation ledger, in allocation order (roles the study shows arms to)."""
    study = service.get_study(session, slug=slug, user=user)
    rows = randomization.list_allocations(
        session, study_id=study.id, after_id=page.after, limit=page.limit
    )
    return AllocationList(
        items=allocation_reads(rows, service.definition_of(study)),
        next=page.next_url(count=len(rows), last_id=rows[-1][0].id if rows else None),
    )


@router.post("/{slug}/simulate", response_model=SimulationResult, tags=["randomization"])
def simulate(
    slug: SlugPath, body: SimulationRequest, session: ReadSessionDep, user: Admin
) -> SimulationResult:
    """Simulate enrollment with throw-away secrets: expected and worst imbalance per arm,
    overall and per stratum, and how often the next allocation could be guessed."""
    study = service.get_study(session, slug=slug, user=user)
    return service.simulate(study, request=body)


@router.put(
    "/{slug}/allocation-table",
    response_model=AllocationTableLoaded,
    tags=["randomization"],
    max_body_size=table.MAX_BYTES,
)
def load_allocation_table(
    slug: SlugPath,
    content: Annotated[
        str,
        Body(
            media_type="text/csv",
            description="CSV: stratum,sequence,arm[,block,block_size,position]",
        ),
    ],
    session: SessionDep,
    actor: Admin,
) -> AllocationTableLoaded:
    """Load the allocation table of a draft study that uses the `table` method."""
    study = service.get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    loaded = service.load_allocation_table(session, study=study, text=content, actor=actor)
    return AllocationTableLoaded(rows=loaded.rows, strata=loaded.strata, sha256=loaded.sha256)
