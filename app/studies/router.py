"""Studies and their sites."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import NowDep, PageDep, ReadSessionDep, SessionDep, require
from app.api.errors import PROBLEM_RESPONSES
from app.api.routing import TransactionalRoute
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.studies import service
from app.studies.schemas import (
    SiteCreate,
    SiteRead,
    StudyActivated,
    StudyDefinition,
    StudyList,
    StudyLockRead,
    StudyRead,
)

router = APIRouter(
    prefix="/api/v1/studies",
    tags=["studies"],
    route_class=TransactionalRoute,
    responses=PROBLEM_RESPONSES,
)

Admin = Annotated[Principal, Depends(require(Permission.manage_studies))]
Reader = Annotated[Principal, Depends(require(Permission.read_studies))]


@router.post("", status_code=201, response_model=StudyRead)
def create_study(
    definition: StudyDefinition, session: SessionDep, now: NowDep, actor: Admin
) -> StudyRead:
    """Create a draft study from a complete definition (validated before anything is stored)."""
    study = service.create_study(session, definition=definition, actor=actor, now=now)
    return service.study_read(study, user=actor)


@router.get("", response_model=StudyList)
def list_studies(session: ReadSessionDep, user: Reader, page: PageDep) -> StudyList:
    """Studies the caller may know of."""
    studies = service.list_studies(session, user=user, after_id=page.after, limit=page.limit)
    return StudyList(
        items=[service.study_read(s, user=user) for s in studies],
        next=page.next_url(count=len(studies), last_id=studies[-1].id if studies else None),
    )


@router.get("/{slug}", response_model=StudyRead)
def get_study(slug: str, session: ReadSessionDep, user: Reader) -> StudyRead:
    """One study; arms only for roles the study's blinding allows."""
    return service.study_read(service.get_study(session, slug=slug, user=user), user=user)


@router.post("/{slug}/activate", response_model=StudyActivated)
def activate_study(slug: str, session: SessionDep, now: NowDep, actor: Admin) -> StudyActivated:
    """Open enrollment; randomization settings are fixed and the commitment published."""
    study = service.get_study(session, slug=slug, user=actor, lock="update")
    study = service.activate_study(session, study=study, actor=actor, now=now)
    assert study.commitment is not None and study.activated_at is not None
    return StudyActivated(
        slug=study.slug,
        status=study.status,
        commitment=study.commitment,
        activated_at=study.activated_at,
    )


@router.post("/{slug}/lock", response_model=StudyLockRead)
def lock_study(slug: str, session: SessionDep, now: NowDep, actor: Admin) -> StudyLockRead:
    """Database lock: enrollment and randomization end, and the secret is revealed so
    anyone can re-derive the sequence and check it against the commitment."""
    study = service.get_study(session, slug=slug, user=actor, lock="update")
    study = service.lock_study(session, study=study, actor=actor, now=now)
    assert study.locked_at is not None
    return StudyLockRead(
        slug=study.slug,
        status=study.status,
        commitment=study.commitment,
        locked_at=study.locked_at,
        secret=study.secret.hex(),
    )


@router.post("/{slug}/sites", status_code=201, response_model=SiteRead)
def add_site(
    slug: str, body: SiteCreate, session: SessionDep, now: NowDep, actor: Admin
) -> SiteRead:
    """Add a site (its code is unique within the study)."""
    study = service.get_study(session, slug=slug, user=actor, lock="share")
    site = service.add_site(
        session, study=study, code=body.code, name=body.name, actor=actor, now=now
    )
    return SiteRead(code=site.code, name=site.name)
