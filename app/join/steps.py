"""The consent steps of an applicant (`/join/a/{token}/...`): the document one section
a page (short pages read well on a phone), the quiz with feedback and a retry, check
your answers, the declaration and signature, and the confirmation.

The quiz answers that passed travel with the forms of "check your answers" and the
signature page (hidden fields) and are marked again when the person signs: nothing
half-done is stored, and only a passing set can be signed with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from app.api.deps import ReadSessionDep, RequestSlot, SessionDep
from app.consent.documents import sections
from app.consent.quiz import Marked, mark
from app.db.base import utcnow
from app.i18n import catalogs
from app.i18n.catalogs import gettext as _
from app.i18n.languages import LANGUAGES
from app.join import checks, forms, service
from app.join.models import Applicant, ApplicantState
from app.join.pages import (
    FORM_BODY_LIMIT,
    JoinPageRoute,
    _applicant,
    _go,
    _personal,
    _signed,
    _step_of,
)
from app.join.service import Opened
from app.studies.definition import ConsentDocument
from app.web.forms import Form, FormDep

router = APIRouter(
    prefix="/join/a",
    tags=["join pages"],
    route_class=JoinPageRoute,
    default_response_class=HTMLResponse,
    max_body_size=FORM_BODY_LIMIT,
    dependencies=[RequestSlot],
    include_in_schema=False,
)


@router.get("/{token}")
def resume(token: str, session: ReadSessionDep) -> Response:
    """The applicant's current step."""
    applicant, _opened = _applicant(session, token)
    return _go(token, _step_of(applicant))


def _ready(applicant: Applicant, token: str) -> Response | None:
    """Where an applicant who may not be at a consent step goes instead."""
    if applicant.state == ApplicantState.contact:
        return _go(token, "contact")
    if _signed(applicant):
        return _go(token, "done")
    return None


def _document(opened: Opened) -> ConsentDocument:
    return service.consent_document(opened.definition)


@router.get("/{token}/consent/{number}")
def show_section(request: Request, token: str, number: str, session: ReadSessionDep) -> Response:
    """Section `number` of the consent document."""
    applicant, opened = _applicant(session, token)
    if (elsewhere := _ready(applicant, token)) is not None:
        return elsewhere
    text = _document(opened).texts[applicant.language]
    shown = sections(text)
    at = int(number) if number.isdigit() and len(number) < 4 else 0
    if not 1 <= at <= len(shown):
        return _go(token, "consent/1")
    after = f"consent/{at + 1}" if at < len(shown) else ("quiz" if text.quiz else "check")
    return _personal(
        request,
        "join/section.html",
        {
            "title": text.title,
            "section": shown[at - 1],
            "number": at,
            "count": len(shown),
            "next": f"/join/a/{token}/{after}",
            "back": f"/join/a/{token}/consent/{at - 1}" if at > 1 else f"/join/a/{token}/contact",
        },
        applicant,
        opened,
    )


def _quiz_page(
    request: Request,
    applicant: Applicant,
    opened: Opened,
    token: str,
    *,
    answers: Mapping[str, str],
    marked: Marked | None = None,
) -> Response:
    document = _document(opened)
    text = document.texts[applicant.language]
    problems = []
    with catalogs.speaking(applicant.language):
        if marked is not None and marked.unanswered:
            problems = [
                (
                    f"q-{code}-1",
                    _("Select an answer to question %(n)s") % {"n": _position(text, code)},
                )
                for code in marked.unanswered
            ]
    status = 422 if problems else 200
    return _personal(
        request,
        "join/quiz.html",
        {
            "title": text.title,
            "quiz": text.quiz,
            "answers": answers,
            "wrong": set(marked.wrong) if marked and not marked.unanswered else set(),
            "failed": marked is not None and not marked.unanswered and not marked.passed,
            "pass_mark": document.quiz_pass_mark(applicant.language),
            "errors": [{"href": f"#{f}", "message": m} for f, m in problems],
            "messages": {f.removeprefix("q-").rsplit("-", 1)[0]: m for f, m in problems},
            "back": f"/join/a/{token}/consent/{len(text.sections)}",
        },
        applicant,
        opened,
        status_code=status,
    )


def _position(text: Any, code: str) -> int:
    return next(i for i, q in enumerate(text.quiz, start=1) if q.code == code)


@router.get("/{token}/quiz")
def show_quiz(request: Request, token: str, session: ReadSessionDep) -> Response:
    applicant, opened = _applicant(session, token)
    if (elsewhere := _ready(applicant, token)) is not None:
        return elsewhere
    return _quiz_page(request, applicant, opened, token, answers={})


def _answers(document: ConsentDocument, language: str, form: Form) -> dict[str, str]:
    """The quiz's answers in the form: only its questions, only their options' values."""
    quiz = document.texts[language].quiz
    return {
        q.code: chosen
        for q in quiz
        if (chosen := forms.choice(form, f"q-{q.code}", [o.value for o in q.options]))
    }


@router.post("/{token}/quiz")
def answer_quiz(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    """Mark the quiz: feedback on each wrong answer and a retry, or on to check answers."""
    applicant, opened = _applicant(session, token, for_update=True)
    if (elsewhere := _ready(applicant, token)) is not None:
        return elsewhere
    document = _document(opened)
    answers = _answers(document, applicant.language, form)
    marked = service.answer_quiz(
        session, applicant=applicant, document=document, answers=answers, now=utcnow()
    )
    if not marked.passed or marked.unanswered:
        return _quiz_page(request, applicant, opened, token, answers=answers, marked=marked)
    return _check_page(request, applicant, opened, token, answers)


def _check_page(
    request: Request, applicant: Applicant, opened: Opened, token: str, answers: Mapping[str, str]
) -> Response:
    document = _document(opened)
    return _personal(
        request,
        "join/check.html",
        {
            "name": applicant.name,
            "email": applicant.email,
            "phone": applicant.phone,
            "language_name": LANGUAGES[applicant.language].name,
            "version": document.version,
            "title": document.texts[applicant.language].title,
            "answers": answers,
            "here": f"/join/a/{token}",
        },
        applicant,
        opened,
    )


@router.get("/{token}/check")
def show_check(request: Request, token: str, session: ReadSessionDep) -> Response:
    """Check your answers (reached from a passed quiz; with no quiz, straight here)."""
    applicant, opened = _applicant(session, token)
    if (elsewhere := _ready(applicant, token)) is not None:
        return elsewhere
    if _document(opened).texts[applicant.language].quiz:
        return _go(token, "quiz")
    return _check_page(request, applicant, opened, token, {})


@router.post("/{token}/sign")
def sign(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    """`step=show`: the declaration and signature; `step=sign`: sign (typed full name and
    the box both required), then enrolled or held, and on to the confirmation."""
    applicant, opened = _applicant(session, token, for_update=True)
    if (elsewhere := _ready(applicant, token)) is not None:
        return elsewhere
    document = _document(opened)
    answers = _answers(document, applicant.language, form)
    if not mark(document, applicant.language, answers).passed:
        return _go(token, "quiz")
    problems: list[tuple[str, str]] = []
    typed = forms.value(form, "typed_name")
    if forms.value(form, "step") == "sign":
        with catalogs.speaking(applicant.language):
            if not typed.strip():
                problems.append(("typed_name", _("Type your full name to sign")))
            elif not checks.names_match(typed, applicant.name or ""):
                problems.append(
                    (
                        "typed_name",
                        _("Type your full name as you gave it: %(name)s")
                        % {"name": applicant.name},
                    )
                )
            if forms.value(form, "agree") != "yes":
                problems.append(("agree", _("Tick the box to confirm you agree to take part")))
        if not problems:
            service.sign(
                session,
                applicant=applicant,
                opened=opened,
                typed_name=typed,
                quiz_answers=answers,
                now=utcnow(),
            )
            return _go(token, "done")
    return _personal(
        request,
        "join/sign.html",
        {
            "title": document.texts[applicant.language].title,
            "version": document.version,
            "answers": answers,
            "typed": {"typed_name": typed, "agree": forms.value(form, "agree")},
            "errors": [{"href": f"#{f}", "message": m} for f, m in problems],
            "messages": dict(problems),
        },
        applicant,
        opened,
        status_code=422 if problems else 200,
    )


@router.get("/{token}/done")
def done(request: Request, token: str, session: ReadSessionDep) -> Response:
    """The confirmation: a copy was emailed; the baseline now, or "we will be in touch"
    (a held sign-up sees the same as anyone when the study does not start baseline)."""
    applicant, opened = _applicant(session, token)
    if not _signed(applicant):
        return _go(token, "contact" if applicant.state == ApplicantState.contact else "consent/1")
    baseline = None
    if applicant.state == ApplicantState.enrolled and opened.definition.join.start_baseline:
        assert applicant.participant_id is not None
        found = service.baseline_token(session, applicant.participant_id)
        baseline = f"/s/{found}" if found else None
    return _personal(
        request,
        "join/done.html",
        {"baseline": baseline, "email": applicant.email},
        applicant,
        opened,
    )
