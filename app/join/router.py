"""Sign-ups held for review (coordinator of the site, admin), and the verification of a
self-reported diagnosis that randomization waits for (SPEC 10)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.orm import Session

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep, send_soon
from app.api.errors import PROBLEM_RESPONSES
from app.api.params import CodePath, SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.idempotency.deps import IdempotencyDep
from app.join import review
from app.join.models import Applicant, ApplicantState
from app.join.schemas import ApplicantList, ApplicantRead, Rejection, Verified, applicant_read
from app.participants.models import Participant
from app.studies.models import Site
from app.studies.service import RowLock, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["applicants"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

Reviewer = Annotated[Principal, Depends(require(Permission.review_applicants))]
ApplicantPath = Annotated[int, Path(ge=1, le=2**53, description="the applicant's id")]


def _read(session: Session, applicant: Applicant) -> ApplicantRead:
    site = session.get_one(Site, applicant.site_id)
    code = None
    if applicant.participant_id is not None:
        code = session.get_one(Participant, applicant.participant_id).code
    return applicant_read(applicant, site=site.code, participant=code)


@router.get("/applicants", response_model=ApplicantList)
def list_applicants(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reviewer,
    state: Annotated[ApplicantState | None, Query(description="default: held")] = None,
) -> ApplicantList:
    """Sign-ups of the caller's sites, newest first (held ones by default)."""
    study = get_study(session, slug=slug, user=user)
    rows = review.applicants(session, study=study, user=user, state=state)
    return ApplicantList(items=[_read(session, a) for a in rows])


@router.post(
    "/applicants/{applicant_id}/accept",
    response_model=ApplicantRead,
    dependencies=[Depends(send_soon)],  # the accepted person's email leaves now
)
def accept(
    slug: SlugPath,
    applicant_id: ApplicantPath,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Reviewer,
) -> Response:
    """Enroll a held sign-up (emailed their link); 409 once decided."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    applicant = review.accept(
        session, study=study, applicant_id=applicant_id, actor=actor, now=utcnow()
    )
    return idempotency.remember(_read(session, applicant))


@router.post("/applicants/{applicant_id}/reject", response_model=ApplicantRead)
def reject(
    slug: SlugPath,
    applicant_id: ApplicantPath,
    body: Rejection,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Reviewer,
) -> Response:
    """Refuse a held sign-up with a reason (3 to 500 characters); 409 once decided."""
    study = get_study(session, slug=slug, user=actor)
    applicant = review.reject(
        session,
        study=study,
        applicant_id=applicant_id,
        reason=body.reason,
        actor=actor,
        now=utcnow(),
    )
    return idempotency.remember(_read(session, applicant))


@router.post("/participants/{code}/verify", response_model=Verified)
def verify(
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Reviewer,
) -> Response:
    """The self-reported diagnosis was checked: randomization may go ahead."""
    study = get_study(session, slug=slug, user=actor)
    participant = review.verify(session, study=study, code=code, actor=actor, now=utcnow())
    assert participant.verified_at is not None
    return idempotency.remember(
        Verified(code=participant.code, verified_at=participant.verified_at)
    )
