"""The public screening link and an applicant's steps (SPEC 10), as pages for people:
`/join/{slug}` (and `/{site}`) screens; `/join/a/{token}/...` are the applicant's
contact details, the consent document in sections, the quiz, check your answers, the
signature and the confirmation. Server-rendered, in the applicant's language, without
JavaScript; every failure is a page (with the status the API would give).

The applicant's link is the secret: a form posts back to it, so no other site can post
for them (no csrf token is needed), and the pages are sent without a referrer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from app.api.deps import ReadSessionDep, RequestSlot, SessionDep
from app.db.base import utcnow
from app.i18n import catalogs
from app.i18n.catalogs import gettext as _
from app.i18n.languages import LANGUAGES
from app.join import checks, forms, service
from app.join.consent_steps import go, personal
from app.join.models import Applicant, ApplicantState
from app.join.service import (
    InvitationEnded,
    JoinClosed,
    Opened,
    TooManySignUps,
    UnknownApplicant,
)
from app.studies.definition import Criterion, words_of
from app.studies.models import Site, Study
from app.web.forms import FormDep
from app.web.pages import page

FORM_BODY_LIMIT = 64 * 1024  # the largest form here is a quiz of 20 radio groups


class JoinPageRoute(APIRoute):
    """Every failure is a page a person can read, never a problem document."""

    def error_page(self, request: Request, error: Exception, problem: Response) -> Response:
        status = problem.status_code
        if isinstance(error, TooManySignUps):
            key = "busy"
        elif isinstance(error, InvitationEnded):
            key = "ended"
        elif isinstance(error, JoinClosed | UnknownApplicant) or status == 404:
            key = "unknown"
        else:
            key = "expired" if status < 500 else "broken"
        response = status_page(request, key, status_code=status)
        if "Retry-After" in problem.headers:
            response.headers["Retry-After"] = problem.headers["Retry-After"]
        return response


def page_router(prefix: str) -> APIRouter:
    """A router of participant pages: HTML, bounded form bodies, a request slot each,
    friendly error pages, and out of the API's schema."""
    return APIRouter(
        prefix=prefix,
        tags=["join pages"],
        route_class=JoinPageRoute,
        default_response_class=HTMLResponse,
        max_body_size=FORM_BODY_LIMIT,
        dependencies=[RequestSlot],
        include_in_schema=False,
    )


router = page_router("/join")


def status_page(
    request: Request, key: str, *, status_code: int, language: str | None = None
) -> Response:
    language = language if language in LANGUAGES else _language_asked(request)
    return page(
        request,
        "join/status.html",
        {"key": key},
        status_code=status_code,
        secret_url=True,
        language=language,
    )


def _language_asked(request: Request) -> str:
    asked = request.query_params.get("lang", "")
    return asked if asked in LANGUAGES else "en"


# ---- screening ---------------------------------------------------------------------


@router.get("/{slug}")
@router.get("/{slug}/{site}")
def show_screening(
    request: Request, slug: str, session: ReadSessionDep, site: str | None = None
) -> Response:
    """The screening questions, in the language asked for (`?lang=`)."""
    opened = service.open_study(session, slug=slug, site=site)
    language = _study_language(opened, request.query_params.get("lang"))
    return _screening_page(request, session, opened, language, site_named=site is not None)


def _study_language(opened: Opened, asked: str | None) -> str:
    languages = opened.definition.languages
    return asked if asked in languages else languages[0]


def _screening_page(
    request: Request,
    session: Any,
    opened: Opened,
    language: str,
    *,
    site_named: bool,
    typed: Mapping[str, str] | None = None,
    problems: list[tuple[str, str]] | None = None,
    status_code: int = 200,
    stamp: str | None = None,
) -> Response:
    """The screening page; `stamp` is the one to carry on (else a new one, of now)."""
    definition = opened.in_language(language)
    criteria = [{"code": c.code, "text": _asked(c)} for c in definition.eligibility]
    factors = [
        {
            "code": f.code,
            "question": f.question or words_of(f.code),
            "levels": [(level, f.label(level)) for level in f.levels],
        }
        for f in definition.randomization.strata
    ]
    if stamp is None:
        key = service.stamp_key(session)
        stamp = checks.stamp(key, slug=opened.study.slug, shown_at=utcnow())
    return page(
        request,
        "join/screening.html",
        {
            **_common(opened, language),
            "languages": [LANGUAGES[code] for code in definition.languages],
            "criteria": criteria,
            "factors": factors,
            "sites": [] if site_named or len(opened.sites) < 2 else opened.sites,
            "stamp": stamp,
            "typed": typed or {},
            "errors": _summary(problems),
            "messages": dict(problems or []),
        },
        status_code=status_code,
        language=language,
    )


def _asked(criterion: Criterion) -> str:
    """A criterion as the screening page asks it: its `question` (the participant's
    words), else its `text` (the staff wording)."""
    return criterion.question or criterion.text


def _common(opened: Opened, language: str) -> dict[str, Any]:
    title = opened.in_language(language).shown_to_participants()
    return {"study_title": title, "language": language}


def _summary(problems: list[tuple[str, str]] | None) -> list[dict[str, str]]:
    return [{"href": f"#{field}", "message": message} for field, message in problems or []]


@router.post("/{slug}")
@router.post("/{slug}/{site}")
def send_screening(
    request: Request, slug: str, session: SessionDep, form: FormDep, site: str | None = None
) -> Response:
    """Screen: an eligible person goes on to contact details (their own link); anyone
    else sees a kind page (never the criterion they did not meet)."""
    opened = service.open_study(session, slug=slug, site=site)
    language = _study_language(opened, forms.value(form, "lang"))
    with catalogs.speaking(language):
        parsed = _read_screening(opened, form)
    if parsed.problems:
        # A person fixing a mistake quickly is not a program: the page keeps the stamp
        # of when it was first shown (if it is a good one), so the time spent counts.
        given = forms.value(form, "shown")
        good = checks.shown_at(
            service.stamp_key(session), slug=opened.study.slug, given=given, now=utcnow()
        )
        return _screening_page(
            request,
            session,
            opened,
            language,
            site_named=site is not None,
            typed=parsed.typed,
            problems=parsed.problems,
            status_code=422,
            stamp=given if good is not None else None,
        )
    assert parsed.site is not None
    screened = service.screen(
        session,
        opened=opened,
        form=service.ScreeningForm(
            site=parsed.site,
            language=language,
            answers=parsed.answers,
            strata=parsed.strata,
            honeypot=forms.value(form, "website"),
            stamp=forms.value(form, "shown"),
        ),
        address=request.client.host if request.client else "unknown",
        now=utcnow(),
    )
    if screened.token is None:
        shown = opened.in_language(language).join.ineligible_text
        return page(
            request,
            "join/ineligible.html",
            {**_common(opened, language), "ineligible_text": shown},
            language=language,
        )
    return go(f"/join/a/{screened.token}/contact")


@dataclass
class _Screening:
    typed: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    answers: dict[str, bool] = field(default_factory=dict)
    strata: dict[str, str] = field(default_factory=dict)
    site: Site | None = None


def _read_screening(opened: Opened, form: forms.Form) -> _Screening:
    definition = opened.definition
    parsed = _Screening()
    typed, problems, answers, strata = parsed.typed, parsed.problems, parsed.answers, parsed.strata
    for criterion in definition.eligibility:
        chosen = forms.choice(form, f"c-{criterion.code}", ("yes", "no"))
        typed[f"c-{criterion.code}"] = chosen or ""
        if chosen is None:
            problems.append((f"c-{criterion.code}-yes", _("Select yes or no")))
        else:
            answers[criterion.code] = chosen == "yes"
    for factor in definition.randomization.strata:
        chosen = forms.choice(form, f"s-{factor.code}", factor.levels)
        typed[f"s-{factor.code}"] = chosen or ""
        if chosen is None:
            problems.append((f"s-{factor.code}-1", _("Select the answer that fits you best")))
        else:
            strata[factor.code] = chosen
    parsed.site = opened.sites[0] if len(opened.sites) == 1 else None
    if parsed.site is None:
        code = forms.value(form, "site")
        parsed.site = next((s for s in opened.sites if s.code == code), None)
        typed["site"] = code if parsed.site else ""
        if parsed.site is None:
            problems.append(("site-1", _("Select where you would like to take part")))
    return parsed


# ---- the applicant's steps -----------------------------------------------------------


def applicant_of(session: Any, token: str, *, for_update: bool = False) -> tuple[Applicant, Opened]:
    """The applicant of this link, and their study (while it takes sign-ups)."""
    applicant = service.find(session, token=token[:64], for_update=for_update)
    study = session.get(Study, applicant.study_id)
    opened = service.open_study(session, slug=study.slug)
    return applicant, opened


def _signed(applicant: Applicant) -> bool:
    return applicant.state in (ApplicantState.held, ApplicantState.enrolled)


@router.get("/a/{token}/contact")
def show_contact(request: Request, token: str, session: ReadSessionDep) -> Response:
    applicant, opened = applicant_of(session, token)
    if _signed(applicant):
        return go(f"/join/a/{token}/done")
    typed = {
        "name": applicant.name or "",
        "email": applicant.email or "",
        "phone": applicant.phone or "",
    }
    if applicant.date_of_birth:
        year, month, day = applicant.date_of_birth.split("-")
        typed |= {"dob-day": str(int(day)), "dob-month": str(int(month)), "dob-year": year}
    return _contact_page(request, applicant, opened, typed)


def _contact_page(
    request: Request,
    applicant: Applicant,
    opened: Opened,
    typed: Mapping[str, str],
    problems: list[tuple[str, str]] | None = None,
) -> Response:
    return personal(
        request,
        "join/contact.html",
        {
            "typed": typed,
            "ask_date_of_birth": opened.definition.join.ask_date_of_birth,
            "errors": _summary(problems),
            "messages": dict(problems or []),
        },
        opened=opened,
        language=applicant.language,
        status_code=422 if problems else 200,
    )


@router.post("/a/{token}/contact")
def send_contact(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    applicant, opened = applicant_of(session, token, for_update=True)
    if _signed(applicant):
        return go(f"/join/a/{token}/done")
    today = datetime.now(opened.definition.zone()).date()  # a birth date is the study's day
    with catalogs.speaking(applicant.language):
        contact, parsed = forms.contact(
            form, ask_date_of_birth=opened.definition.join.ask_date_of_birth, today=today
        )
    if contact is None:
        return _contact_page(request, applicant, opened, parsed.typed, parsed.problems)
    service.save_contact(
        session,
        applicant=applicant,
        form=service.ContactForm(contact.name, contact.email, contact.phone, contact.date_of_birth),
        now=utcnow(),
    )
    return go(f"/join/a/{token}/consent/1")
