"""An applicant's consent steps (`/join/a/{token}/...`), on `consent_steps`' pages: the
document, the quiz (attempts counted on the applicant; failing twice flags them for a
call, and they may still retry), check your answers, signing, and the confirmation.
"""

from __future__ import annotations

from fastapi import Depends, Request, Response

from app.api.deps import ReadSessionDep, SessionDep, send_soon
from app.consent.quiz import mark
from app.db.base import utcnow
from app.join import forms, service
from app.join.consent_steps import (
    DOCUMENT_FIELD,
    Signer,
    bound,
    check_page,
    go,
    personal,
    quiz_answers,
    quiz_page,
    read_other,
    section_page,
    sign_page,
    sign_problems,
    updated,
)
from app.join.models import Applicant, ApplicantState
from app.join.pages import applicant_of, page_router
from app.join.service import Opened
from app.web.forms import FormDep

router = page_router("/join/a")


def _signer(applicant: Applicant, opened: Opened, token: str) -> Signer:
    base = f"/join/a/{token}"
    return Signer(
        base=base,
        opened=opened,
        language=applicant.language,
        document=service.consent_document(opened.definition),
        name=applicant.name,
        email=applicant.email,
        phone=applicant.phone,
        before_first=f"{base}/contact",
        contact_link=f"{base}/contact",
    )


def _signed(applicant: Applicant) -> bool:
    return applicant.state in (ApplicantState.held, ApplicantState.enrolled)


def _step_of(applicant: Applicant) -> str:
    if applicant.state == ApplicantState.contact:
        return "contact"
    if applicant.state == ApplicantState.consent:
        return "consent/1"
    return "done"


def _elsewhere(applicant: Applicant, token: str) -> Response | None:
    """Where an applicant who may not be at a consent step goes instead."""
    if applicant.state != ApplicantState.consent:
        return go(f"/join/a/{token}/{_step_of(applicant)}")
    return None


@router.get("/{token}")
def resume(token: str, session: ReadSessionDep) -> Response:
    """The applicant's current step."""
    applicant, _opened = applicant_of(session, token)
    return go(f"/join/a/{token}/{_step_of(applicant)}")


@router.get("/{token}/consent/{number}")
def show_section(request: Request, token: str, number: str, session: ReadSessionDep) -> Response:
    """Section `number` of the consent document."""
    applicant, opened = applicant_of(session, token)
    if (elsewhere := _elsewhere(applicant, token)) is not None:
        return elsewhere
    return section_page(request, _signer(applicant, opened, token), number[:4])


@router.get("/{token}/quiz")
def show_quiz(request: Request, token: str, session: ReadSessionDep) -> Response:
    applicant, opened = applicant_of(session, token)
    if (elsewhere := _elsewhere(applicant, token)) is not None:
        return elsewhere
    signer = _signer(applicant, opened, token)
    if read_other(signer, request.query_params.get(DOCUMENT_FIELD)):
        return updated(signer)
    return quiz_page(request, signer, answers={})


@router.post("/{token}/quiz")
def answer_quiz(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    """Mark the quiz: feedback on each wrong answer and a retry, or on to check answers."""
    applicant, opened = applicant_of(session, token, for_update=True)
    if (elsewhere := _elsewhere(applicant, token)) is not None:
        return elsewhere
    signer = _signer(applicant, opened, token)
    if read_other(signer, forms.value(form, DOCUMENT_FIELD) or None):
        return updated(signer)
    answers = quiz_answers(signer, form)
    marked = service.answer_quiz(
        session, applicant=applicant, document=signer.document, answers=answers, now=utcnow()
    )
    if not marked.passed or marked.unanswered:
        return quiz_page(request, signer, answers=answers, marked=marked)
    return check_page(request, signer, answers)


@router.get("/{token}/check")
def show_check(request: Request, token: str, session: ReadSessionDep) -> Response:
    """Check your answers (reached from a passed quiz; with no quiz, straight here)."""
    applicant, opened = applicant_of(session, token)
    if (elsewhere := _elsewhere(applicant, token)) is not None:
        return elsewhere
    signer = _signer(applicant, opened, token)
    if read_other(signer, request.query_params.get(DOCUMENT_FIELD)):
        return updated(signer)
    if signer.text.quiz:
        return go(f"/join/a/{token}/quiz")
    return check_page(request, signer, {})


@router.post("/{token}/sign", dependencies=[Depends(send_soon)])  # the emailed copy
def sign(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    """`step=show`: the declaration and signature; `step=sign`: sign (typed full name and
    the box both required), then enrolled or held, and on to the confirmation."""
    applicant, opened = applicant_of(session, token, for_update=True)
    if (elsewhere := _elsewhere(applicant, token)) is not None:
        return elsewhere
    signer = _signer(applicant, opened, token)
    if not bound(signer, form):  # the document changed since it was shown: read it again
        return updated(signer)
    answers = quiz_answers(signer, form)
    if not mark(signer.document, signer.language, answers).passed:
        return go(f"/join/a/{token}/quiz")
    problems = sign_problems(signer, form) if form.get("step") == ["sign"] else []
    if form.get("step") == ["sign"] and not problems:
        service.sign(
            session,
            applicant=applicant,
            opened=opened,
            typed_name=form["typed_name"][0],
            quiz_answers=answers,
            now=utcnow(),
        )
        return go(f"/join/a/{token}/done")
    return sign_page(request, signer, form, answers, problems)


@router.get("/{token}/done")
def done(request: Request, token: str, session: ReadSessionDep) -> Response:
    """The confirmation: a copy was emailed; the baseline now, or "we will be in touch"
    (a held sign-up sees the same as anyone when the study does not start baseline)."""
    applicant, opened = applicant_of(session, token)
    if not _signed(applicant):
        return go(f"/join/a/{token}/{_step_of(applicant)}")
    baseline = None
    if applicant.state == ApplicantState.enrolled and opened.definition.join.start_baseline:
        assert applicant.participant_id is not None
        found = service.baseline_token(session, applicant.participant_id)
        baseline = f"/s/{found}" if found else None
    return personal(
        request,
        "join/done.html",
        {"baseline": baseline, "email": applicant.email},
        opened=opened,
        language=applicant.language,
    )
