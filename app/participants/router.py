"""Participants: screening and enrollment, reading, randomizing, withdrawing, unblinding."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import BaseUrl, ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.paging import PageDep
from app.api.params import CodePath, SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.idempotency.deps import IdempotencyDep
from app.participants import service
from app.participants.lifecycle import ParticipantStatus
from app.participants.schemas import (
    InvitationResent,
    ParticipantCreate,
    ParticipantCreated,
    ParticipantList,
    ParticipantRead,
    ParticipantReadUnblinded,
    RandomizeResult,
    RandomizeResultUnblinded,
    ReissuedLink,
    UnblindRequest,
    UnblindResult,
    Withdrawal,
    participant_created,
    participant_read,
    participant_summary,
    randomize_result,
    survey_link,
)
from app.studies.service import RowLock, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}/participants",
    tags=["participants"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,  # a route that takes more says so (413 beyond)
    dependencies=STAFF_ROUTES,
)

Reader = Annotated[Principal, Depends(require(Permission.read_participants))]
AnyParticipantRead = ParticipantReadUnblinded | ParticipantRead


@router.post("", status_code=201, response_model=ParticipantCreated)
def enroll(
    slug: SlugPath,
    body: ParticipantCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Annotated[Principal, Depends(require(Permission.enroll))],
) -> Response:
    """Screen a person; enroll them when eligible (ineligible screenings are kept)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    participant = service.enroll(session, study=study, data=body, actor=actor)
    labels = service.exclusion_labels(study=study, codes=participant.ineligible_reasons)
    return idempotency.remember(participant_created(participant, labels=labels))


@router.get("", response_model=ParticipantList)
def list_participants(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    page: PageDep,
    site: Annotated[str | None, Query(max_length=12, description="site code")] = None,
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


@router.get("/{code}", response_model=AnyParticipantRead)
def get_participant(
    slug: SlugPath, code: CodePath, session: ReadSessionDep, user: Reader, base: BaseUrl
) -> AnyParticipantRead:
    """One participant with contact details and surveys (an open one with its link); the
    arm only for roles that may see it."""
    study = get_study(session, slug=slug, user=user)
    participant = service.get_participant(session, study=study, code=code, user=user)
    detail = service.detail(session, study=study, participant=participant, user=user)
    return participant_read(detail, base_url=base)


@router.post("/{code}/withdraw", response_model=AnyParticipantRead)
def withdraw(
    slug: SlugPath,
    code: CodePath,
    body: Withdrawal,
    session: SessionDep,
    idempotency: IdempotencyDep,
    base: BaseUrl,
    actor: Annotated[Principal, Depends(require(Permission.withdraw))],
) -> Response:
    """Record that the participant leaves, by kind; a randomized participant keeps the
    allocation (ITT)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    participant = service.withdraw(
        session,
        study=study,
        code=code,
        reason=body.reason,
        actor=actor,
        kind=body.kind,
        withdrawn_on=body.withdrawn_on,
        category=body.category,
    )
    detail = service.detail(session, study=study, participant=participant, user=actor)
    return idempotency.remember(participant_read(detail, base_url=base))


@router.post("/{code}/randomize", response_model=RandomizeResultUnblinded | RandomizeResult)
def randomize(
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Annotated[Principal, Depends(require(Permission.randomize))],
) -> Response:
    """Allocate the next slot of the participant's stratum; 409 if already randomized."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    randomized = service.randomize(session, study=study, code=code, actor=actor)
    return idempotency.remember(randomize_result(randomized.participant, randomized.arm))


@router.post("/{code}/unblind", response_model=UnblindResult)
def unblind(
    slug: SlugPath,
    code: CodePath,
    body: UnblindRequest,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Annotated[Principal, Depends(require(Permission.unblind))],
) -> Response:
    """Reveal one participant's arm; the reason is written to the audit trail."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    participant, arm, label = service.unblind(
        session, study=study, code=code, reason=body.reason, actor=actor
    )
    return idempotency.remember(UnblindResult(code=participant.code, arm=arm, arm_label=label))


@router.post("/{code}/surveys/{timepoint}/reissue", response_model=ReissuedLink)
def reissue_link(
    slug: SlugPath,
    code: CodePath,
    timepoint: Annotated[str, Path(max_length=64, description="timepoint code")],
    session: SessionDep,
    idempotency: IdempotencyDep,
    base: BaseUrl,
    actor: Annotated[Principal, Depends(require(Permission.enroll))],
) -> Response:
    """A new personal link for the survey; the old one answers 410 from now on.

    For a role the study keeps blind to arms, a survey whose instruments differ by arm
    gets `link: null` (its pages would show the arm). For every role, the new link of
    an open survey is emailed to the participant (`emailed` says whether it was). For
    such a role and a timepoint only some arms have, the answer is always 200
    `{"link": null, "emailed": null}`, whether or not the participant has that survey
    (the link is replaced, and emailed, only where they do)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    new = service.reissue(session, study=study, code=code, timepoint=timepoint, actor=actor)
    link = survey_link(base, new.token) if new.token else None
    return idempotency.remember(ReissuedLink(link=link, emailed=new.emailed))


@router.post("/{code}/surveys/{timepoint}/resend", status_code=202, response_model=InvitationResent)
def resend_invitation(
    slug: SlugPath,
    code: CodePath,
    timepoint: Annotated[str, Path(max_length=64, description="timepoint code")],
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Annotated[Principal, Depends(require(Permission.enroll))],
) -> Response:
    """Email the invitation of an open survey again, with its current link; 409 unless the
    survey is open.

    For a role the study keeps blind to arms and a timepoint only some arms have, the
    answer is always 202 `{"queued": null}`, whether or not the participant has that
    survey (the email is queued only where they have it open)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    told = service.resend_invitation(
        session, study=study, code=code, timepoint=timepoint, actor=actor
    )
    return idempotency.remember(
        InvitationResent(timepoint=timepoint, queued=True if told else None)
    )
