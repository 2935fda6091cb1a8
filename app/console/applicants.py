"""Held sign-ups in the console (SPEC 10): the queue of a coordinator's sites (every
site for admins) with why each is held, whether the person failed the quiz twice and
asks for a call, how to reach them; Accept and Reject (with a reason). And the button
that records a self-reported diagnosis as verified. Each calls the service the API
calls (`join.review`), with the signed-in user as the actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request, Response

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs, study_view
from app.console.forms import FormRefused, text
from app.console.shared import acting, back
from app.db.base import utcnow
from app.join import review
from app.join.models import Applicant
from app.studies import service as studies
from app.studies.models import Study

router = console_router()

Reviewer = Annotated[Staff, needs(Permission.review_applicants)]
ApplicantId = Annotated[int, Path(ge=1, le=2**31 - 1)]

HOLD_WORDS = {
    "duplicate_email": "Same email as a participant or another sign-up",
    "duplicate_phone": "Same phone number as a participant or another sign-up",
    "honeypot": "Filled in a field people never see (likely a program)",
    "too_fast": "Sent the screening faster than a person can read it",
    "busy_address": "Many sign-ups from the same network address within an hour",
    "busy_study": "Unusually many sign-ups in the study within an hour",
    "rescreened": "Eligible just after an ineligible screening from the same network address",
}
DONE = {
    "accepted": "The sign-up is accepted: the person is enrolled and emailed their link.",
    "rejected": "The sign-up is rejected.",
    "verified": "The diagnosis is recorded as verified: the participant can be randomized.",
}


@router.get("/studies/{slug}/applicants")
def applicants_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Reviewer,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Sign-ups held for review, newest first."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    held = review.applicants(session, study=study, user=staff.user, state=None)
    return _page(request, staff, study, held, notice=DONE.get(done or ""))


def _page(
    request: Request,
    staff: Staff,
    study: Study,
    held: list[Applicant] | tuple[Applicant, ...] | object,
    *,
    notice: str | None = None,
    errors: dict[int, str] | None = None,
    status_code: int = 200,
) -> Response:
    sites = {s.id: s.code for s in study.sites}
    return study_view(
        request,
        staff,
        study,
        "console/applicants.html",
        {
            "held": held,
            "sites": sites,
            "hold_words": HOLD_WORDS,
            "notice": notice,
            "errors": errors or {},
            "zone": studies.definition_of(study).zone(),
        },
        status_code=status_code,
    )


@router.post("/studies/{slug}/applicants/{applicant_id}/accept")
def accept(
    slug: SlugPath,
    applicant_id: ApplicantId,
    session: SessionDep,
    staff: Reviewer,
    form: CheckedForm,
) -> Response:
    study = acting(session, slug, staff)
    review.accept(session, study=study, applicant_id=applicant_id, actor=staff.user, now=utcnow())
    return back(study, "/applicants", done="accepted")


@router.post("/studies/{slug}/applicants/{applicant_id}/reject")
def reject(
    request: Request,
    slug: SlugPath,
    applicant_id: ApplicantId,
    session: SessionDep,
    staff: Reviewer,
    form: CheckedForm,
) -> Response:
    study = acting(session, slug, staff)
    reason = " ".join(text(form, "reason").split())
    if not 3 <= len(reason) <= 500:
        held = review.applicants(session, study=study, user=staff.user, state=None)
        message = "Say why the sign-up is rejected (3 to 500 characters)"
        raise FormRefused(
            _page(request, staff, study, held, errors={applicant_id: message}, status_code=422)
        )
    review.reject(
        session,
        study=study,
        applicant_id=applicant_id,
        reason=reason,
        actor=staff.user,
        now=utcnow(),
    )
    return back(study, "/applicants", done="rejected")


@router.post("/studies/{slug}/participants/{code}/verify")
def verify(
    slug: SlugPath, code: CodePath, session: SessionDep, staff: Reviewer, form: CheckedForm
) -> Response:
    """Record the self-reported diagnosis as checked."""
    study = acting(session, slug, staff)
    review.verify(session, study=study, code=code, actor=staff.user, now=utcnow())
    return back(study, f"/participants/{code}", done="verified")
