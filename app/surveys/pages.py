"""The survey pages a personal link opens (`/s/{token}`): server-rendered, usable on a
small phone and without JavaScript.

One instrument per page ("Part 2 of 3"). The form posts the answers of its page with an
`action`: `next` and `back` keep them and move on, `save` keeps them and says until when
the link works, `submit` (on the last page) sends everything. A page's answers are
checked before anything is kept: at fault, the same page comes back (422) with every
answer as typed, the errors beside their questions and summarized at the top. Links that
cannot be answered (unknown, not open yet, completed, closed, replaced, withdrawn) get a
page of their own with the status codes of the JSON API.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, RequestSlot, SessionDep, send_soon
from app.db.base import utcnow
from app.db.server_key import keys_of
from app.errors import FieldProblem, InvalidAnswers
from app.i18n import catalogs
from app.i18n.languages import LANGUAGES
from app.keys import Use
from app.studies.definition import Item, ItemType
from app.studies.service import definition_in
from app.surveys import birth, layout, service
from app.surveys.deps import slow_down_link_guessers
from app.surveys.forms import as_typed, parse_form, shortened
from app.surveys.language import choose_language, language_of
from app.surveys.link_pages import (
    PAGE_EXPIRED,
    common,
    error_page,
    state_page,
    status_page,
    too_large_page,
)
from app.surveys.scheduling import SurveyStatus
from app.surveys.scoring import check
from app.surveys.service import OpenedSurvey
from app.surveys.tokens import form_token
from app.web.forms import FormDep, first
from app.web.pages import TEXT_SIZE_COOKIE, TEXT_SIZES, page

__all__ = ["router", "too_large_page"]

# One page of answers, typed by a person: up to 200 items, text answers of up to 5,000
# characters, which a form encodes in up to 12 bytes each in some scripts.
FORM_BODY_LIMIT = 1024 * 1024


class LinkPageRoute(APIRoute):
    """Routes whose every failure is a page a person can read (with the status and
    headers the JSON problem would have), never a problem document or a stack trace."""

    def error_page(self, request: Request, error: Exception, problem: Response) -> Response:
        response = error_page(request, error, problem.status_code)
        retry_after = problem.headers.get("Retry-After")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {}}}


# Every answer is an HTML page; these are the statuses of the JSON API's survey routes.
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _html("The survey's page (or, after a save, the page saying it is saved)"),
    303: {
        "description": "After `next` or `back`: the survey's next or previous page; after "
        "`?text=`: the same page, with the text size kept in a cookie"
    },
    400: _html("The address is malformed"),
    403: _html("The form did not come from this link's page (csrf token)"),
    404: _html("No survey has this link"),
    409: _html("The survey is not open yet, or was completed"),
    410: _html("The link was replaced, the survey closed, or it was cancelled"),
    413: _html("The form is larger than a page of answers"),
    422: _html("Some answers need correcting: the page with the errors beside them"),
    429: _html("Too many unknown links from this address; see Retry-After"),
    503: _html("Busy; see Retry-After"),
}

router = APIRouter(
    prefix="/s",
    tags=["survey pages"],
    responses=PAGE_RESPONSES,
    route_class=LinkPageRoute,
    default_response_class=HTMLResponse,
    max_body_size=FORM_BODY_LIMIT,
    dependencies=[RequestSlot, Depends(slow_down_link_guessers, scope="function")],
)


@router.get("/{token}", response_class=HTMLResponse)
def show_survey(
    request: Request,
    token: str,
    session: ReadSessionDep,
    part: str | None = None,
    text: str | None = None,
) -> Response:
    """A page of the survey (`?part=N`; by default the first with a required question
    unanswered, or the study's intro page while nothing is saved), with the answers saved
    so far; or the page saying why it cannot be answered. `?text=large` (or `standard`)
    chooses the text size, remembered in a cookie, and comes back to the same page."""
    if text is not None:
        return _remember_text_size(request, token=token, size=text, part=part)
    opened = shown_in_language(session, service.view(session, token=token))
    with catalogs.speaking(opened.language):
        if opened.status is not SurveyStatus.open:
            return state_page(request, opened)
        if _asks_date_of_birth(session, opened):
            return _birth_page(request, session, opened, birth.Given())
        number = _part_number(part, opened)
        intro = opened.definition.intro
        if number is None and intro is not None and intro.enabled and not opened.instance.answers:
            return _intro_page(request, opened)
        number = number or _resume_at(opened)
        return _part_page(request, session, opened, number, shown=as_typed(opened.instance.answers))


@router.get("/{token}/language/{code}", response_class=HTMLResponse)
def choose_survey_language(token: str, code: str, session: SessionDep) -> Response:
    """Show this participant's pages (and send their emails) in another of the study's
    languages, then come back to the survey. A language the study does not offer
    changes nothing."""
    opened = service.view(session, token=token)
    if opened.status is SurveyStatus.open and code in opened.definition.languages:
        choose_language(session, participant_id=opened.instance.participant_id, language=code)
    response = RedirectResponse(f"/s/{quote(token, safe='')}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def shown_in_language(session: Session, opened: OpenedSurvey) -> OpenedSurvey:
    """The survey with its study's texts in the participant's language."""
    language = language_of(
        session, participant_id=opened.instance.participant_id, definition=opened.definition
    )
    return replace(opened, definition=definition_in(opened.study, language), language=language)


def _check_date_of_birth(
    request: Request, session: Session, opened: OpenedSurvey, *, token: str, form: FormDep
) -> Response:
    """The date-of-birth re-check (`birth`): whatever the outcome, on to the survey."""
    today = datetime.now(opened.definition.zone()).date()
    given = birth.read(form, today=today)
    if given.born is None:
        return _birth_page(request, session, opened, given)
    birth.check(
        session,
        participant_id=opened.instance.participant_id,
        study_id=opened.instance.study_id,
        given=given.born,
        now=utcnow(),
    )
    return _redirect(token, None)


def _asks_date_of_birth(session: Session, opened: OpenedSurvey) -> bool:
    return birth.pending(
        session, participant_id=opened.instance.participant_id, definition=opened.definition
    )


def _birth_page(
    request: Request, session: Session, opened: OpenedSurvey, given: birth.Given
) -> Response:
    return page(
        request,
        "survey/birth.html",
        {
            **common(opened),
            "csrf_token": _csrf_token(session, opened),
            "typed": given.typed,
            "message": given.problem,
            "other_languages": _other_languages(request, opened),
        },
        status_code=422 if given.problem else 200,
        secret_url=True,
        language=opened.language,
    )


@router.post("/{token}", response_class=HTMLResponse)
def answer_survey(
    request: Request,
    token: str,
    session: SessionDep,
    form: FormDep,
    background: BackgroundTasks,
) -> Response:
    """Keep this page's answers and go on (`action`: `next`, `back`, `save`), or submit
    the survey (`action=submit`, on its last page)."""
    opened = shown_in_language(session, service.find(session, token=token, now=utcnow()))
    with catalogs.speaking(opened.language):
        return _answer(request, session, opened, token=token, form=form, background=background)


def _answer(
    request: Request,
    session: Session,
    opened: OpenedSurvey,
    *,
    token: str,
    form: FormDep,
    background: BackgroundTasks,
) -> Response:
    if opened.status is not SurveyStatus.open:
        return state_page(request, opened)
    expected = _csrf_token(session, opened)
    if not hmac.compare_digest(first(form, "csrf_token").encode(), expected.encode()):
        return status_page(request, PAGE_EXPIRED, opened=opened, status_code=403)
    if first(form, "step") == "date-of-birth":
        return _check_date_of_birth(request, session, opened, token=token, form=form)
    if _asks_date_of_birth(session, opened):
        return _redirect(token, None)  # the check comes first: nothing kept before it
    number = _part_number(first(form, "part"), opened) or 1
    action = first(form, "action")
    instrument = opened.instruments[number - 1]
    parsed = parse_form(instrument.items, form)
    finishing = action in ("next", "submit")
    problems = _first_per_item(
        parsed.problems + check(instrument.items, parsed.answers, complete=finishing)
    )
    if problems:
        return _part_page(request, session, opened, number, shown=parsed.typed, problems=problems)
    unanswered = [item.code for item in instrument.items if item.code not in parsed.answers]
    service.save(
        session, token=token, answers=parsed.answers, clear=unanswered, language=opened.language
    )
    parts = len(opened.instruments)
    if action == "submit" and number == parts:
        return _submit(request, session, opened, token=token, background=background)
    if action == "next" and number < parts:
        return _redirect(token, number + 1)
    if action == "back" and number > 1:
        return _redirect(token, number - 1)
    return page(
        request,
        "survey/saved.html",
        {**common(opened), "closes_on": opened.instance.closes_on, "part": number},
        secret_url=True,
        language=opened.language,
    )


def _submit(
    request: Request,
    session: Session,
    opened: OpenedSurvey,
    *,
    token: str,
    background: BackgroundTasks,
) -> Response:
    try:
        done = service.submit(session, token=token, answers={}, language=opened.language)
    except InvalidAnswers as invalid:
        # This page's answers were complete (and are kept): what is missing is on an
        # earlier page, reached by its address rather than through "Continue".
        problems = _first_per_item(invalid.problems)
        number = _part_of(opened, problems)
        return _part_page(
            request,
            session,
            opened,
            number,
            shown=as_typed(opened.instance.answers),
            problems=problems,
        )
    if done.alerts:
        send_soon(request, background)  # the coordinators' alert email, now
    definition = opened.definition
    now = utcnow()
    upcoming = [
        i.opens_on
        for i in service.instances_of(session, participant_id=opened.instance.participant_id)
        if service.status_of(i, definition=definition, now=now) is SurveyStatus.scheduled
    ]
    return page(
        request,
        "survey/thanks.html",
        {
            **common(opened),
            "support_text": definition.support_text,
            "crisis_text": definition.crisis_text if done.alerts else None,
            "next_survey_on": min(upcoming, default=None),
        },
        secret_url=True,
        language=opened.language,
    )


def _part_page(
    request: Request,
    session: Session,
    opened: OpenedSurvey,
    number: int,
    *,
    shown: Mapping[str, list[str]],
    problems: Sequence[FieldProblem] = (),
) -> Response:
    instrument = opened.instruments[number - 1]
    watched = layout.watched_items(opened.definition)
    items = {item.code: item for item in opened.items}
    messages: dict[str, str] = {}
    summary = []
    for problem in problems:
        item = items.get(str(problem.loc[0])) if problem.loc else None
        if item is None:
            summary.append({"href": "#main-content", "message": problem.msg})
            continue
        # Worded the same beside the question and in the summary, naming the question.
        messages[item.code] = catalogs.gettext("%(problem)s for “%(question)s”") % {
            "problem": problem.msg,
            "question": shortened(item.text),
        }
        summary.append({"href": f"#{_first_input(item)}", "message": messages[item.code]})
    return page(
        request,
        "survey/part.html",
        {
            **common(opened),
            "instrument": instrument,
            "part": number,
            "parts": len(opened.instruments),
            "csrf_token": _csrf_token(session, opened),
            "errors": summary,
            "messages": messages,
            "shown": defaultdict(list, shown),
            "hints": {item.code: hint for item in instrument.items if (hint := layout.hints(item))},
            "any_optional": layout.any_optional(instrument.items),
            "crisis_after": layout.crisis_after(instrument.items, watched),
            "crisis_text": opened.definition.crisis_text,
            "other_languages": _other_languages(request, opened) if number == 1 else [],
        },
        status_code=422 if problems else 200,
        secret_url=True,
        language=opened.language,
    )


def _intro_page(request: Request, opened: OpenedSurvey) -> Response:
    definition = opened.definition
    watched = layout.watched_items(definition)
    return page(
        request,
        "survey/intro.html",
        {
            **common(opened),
            "intro": definition.intro,
            "parts": len(opened.instruments),
            "closes_on": opened.instance.closes_on,
            "asks_about_safety": layout.asks_about_safety(opened.instruments, watched),
            "crisis_text": definition.crisis_text,
            "other_languages": _other_languages(request, opened),
        },
        secret_url=True,
        language=opened.language,
    )


def _other_languages(request: Request, opened: OpenedSurvey) -> list[dict[str, str]]:
    """The study's other languages, each named in itself, as links that switch to it."""
    here = request.url.path.rstrip("/")
    return [
        {"code": code, "name": LANGUAGES[code].name, "href": f"{here}/language/{code}"}
        for code in opened.definition.languages
        if code != opened.language and code in LANGUAGES
    ]


def _remember_text_size(request: Request, *, token: str, size: str, part: str | None) -> Response:
    """Back to the page the size was chosen on, with the size kept for every survey page
    of this browser (the choice of a person, not data about them: no expiry needed soon)."""
    where = f"/s/{quote(token, safe='')}"
    if part is not None and part.isascii() and part.isdigit() and len(part) <= 4:
        where += f"?part={part}"
    response = RedirectResponse(where, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    if size in TEXT_SIZES:
        response.set_cookie(
            TEXT_SIZE_COOKIE,
            size,
            max_age=365 * 24 * 3600,
            path="/s/",
            secure=request.url.scheme == "https",
            httponly=False,  # the page's script sets the same cookie without a reload
            samesite="strict",
        )
    return response


def _csrf_token(session: Session, opened: OpenedSurvey) -> str:
    key = keys_of(session).derived(Use.survey_link)
    return form_token(key, hashed_token=opened.instance.token_hash, issue=opened.instance.issue)


def _part_number(raw: str | None, opened: OpenedSurvey) -> int | None:
    """The page asked for, if it is one of the survey's."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        return None
    number = int(raw)
    return number if 1 <= number <= len(opened.instruments) else None


def _resume_at(opened: OpenedSurvey) -> int:
    """The first page with a required question unanswered (the last if none is)."""
    answers = opened.instance.answers
    for number, instrument in enumerate(opened.instruments, start=1):
        if any(item.required and item.code not in answers for item in instrument.items):
            return number
    return len(opened.instruments)


def _part_of(opened: OpenedSurvey, problems: Sequence[FieldProblem]) -> int:
    """The first page holding a question at fault."""
    at_fault = {str(p.loc[0]) for p in problems if p.loc}
    for number, instrument in enumerate(opened.instruments, start=1):
        if any(item.code in at_fault for item in instrument.items):
            return number
    return 1


def _first_per_item(problems: Sequence[FieldProblem]) -> list[FieldProblem]:
    """One message per question: what it cannot read hides that it is missing."""
    seen: set[Any] = set()
    kept = []
    for problem in problems:
        if problem.loc not in seen:
            seen.add(problem.loc)
            kept.append(problem)
    return kept


def _first_input(item: Item) -> str:
    """The id of the question's first input (where an error summary link goes)."""
    if item.type in (ItemType.choice, ItemType.multi_choice, ItemType.boolean):
        return f"{item.code}-1"
    return item.code


def _redirect(token: str, number: int | None) -> Response:
    where = f"/s/{quote(token, safe='')}" + (f"?part={number}" if number else "")
    response = RedirectResponse(where, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
