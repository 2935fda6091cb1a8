"""Screening, enrollment, reading and withdrawing participants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.deps import NowDep, PageDep, ReadSessionDep, SessionDep, require
from app.api.errors import PROBLEM_RESPONSES
from app.api.routing import TransactionalRoute
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.participants import service
from app.participants.models import ParticipantStatus
from app.participants.schemas import (
    ParticipantCreate,
    ParticipantCreated,
    ParticipantList,
    ParticipantRead,
    Withdrawal,
)
from app.participants.views import participant_read, participant_summary
from app.studies.service import get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}/participants",
    tags=["participants"],
    route_class=TransactionalRoute,
    responses=PROBLEM_RESPONSES,
)


@router.post("", status_code=201, response_model=ParticipantCreated)
def enroll(
    slug: str,
    body: ParticipantCreate,
    session: SessionDep,
    now: NowDep,
    actor: Annotated[Principal, Depends(require(Permission.enroll))],
) -> ParticipantCreated:
    """Screen a person; enroll them when eligible (ineligible screenings are kept)."""
    study = get_study(session, slug=slug, user=actor, lock="share")
    participant = service.enroll(session, study=study, data=body, actor=actor, now=now)
    return ParticipantCreated(
        code=participant.code,
        status=participant.status,
        site=participant.site.code,
        ineligible_reasons=participant.ineligible_reasons,
    )


@router.get("", response_model=ParticipantList)
def list_participants(
    slug: str,
    session: ReadSessionDep,
    user: Annotated[Principal, Depends(require(Permission.read_participants))],
    page: PageDep,
    site: Annotated[str | None, Query(description="site code")] = None,
    status: ParticipantStatus | None = None,
) -> ParticipantList:
    """Participants of the caller's sites (all sites for admins)."""
    study = get_study(session, slug=slug, user=user)
    rows = service.list_participants(
        session,
        study=study,
        user=user,
        site=site,
        status=status,
        after_id=page.after,
        limit=page.limit,
    )
    return ParticipantList(
        items=[participant_summary(p) for p in rows],
        next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None),
    )


@router.get("/{code}", response_model=ParticipantRead)
def get_participant(
    slug: str,
    code: str,
    session: ReadSessionDep,
    user: Annotated[Principal, Depends(require(Permission.read_participants))],
) -> ParticipantRead:
    """One participant with contact details; the arm only for roles that may see it."""
    study = get_study(session, slug=slug, user=user)
    participant = service.get_participant(session, study=study, code=code, user=user)
    return participant_read(session, study=study, participant=participant, user=user)


@router.post("/{code}/withdraw", response_model=ParticipantRead)
def withdraw(
    slug: str,
    code: str,
    body: Withdrawal,
    session: SessionDep,
    now: NowDep,
    actor: Annotated[Principal, Depends(require(Permission.withdraw))],
) -> ParticipantRead:
    """Record a withdrawal; a randomized participant keeps the allocation (ITT)."""
    study = get_study(session, slug=slug, user=actor, lock="share")
    participant = service.withdraw(
        session, study=study, code=code, reason=body.reason, actor=actor, now=now
    )
    return participant_read(session, study=study, participant=participant, user=actor)
