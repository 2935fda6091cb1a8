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
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.types import Scope

from app import errors
from app.api.deps import ReadSessionDep, RequestSlot, SessionDep
from app.db.base import utcnow
from app.db.server_key import keys_of
from app.errors import FieldProblem, InvalidAnswers
from app.keys import Use
from app.studies.definition import Item, ItemType
from app.surveys import service
from app.surveys.deps import slow_down_link_guessers
from app.surveys.forms import NO, YES, parse_form
from app.surveys.scheduling import SurveyStatus
from app.surveys.scoring import check
from app.surveys.service import OpenedSurvey
from app.surveys.tokens import form_token
from app.web.forms import FormDep, first
from app.web.pages import longdate, page

# One page of answers, typed by a person: up to 200 items, text answers of up to 5,000
# characters, which a form encodes in up to 12 bytes each in some scripts.
FORM_BODY_LIMIT = 1024 * 1024


class LinkPageRoute(APIRoute):
    """Routes whose every failure is a page a person can read (with the status and
    headers the JSON problem would have), never a problem document or a stack trace."""

    def error_page(self, request: Request, error: Exception, problem: Response) -> Response:
        response = _error_page(request, error, problem.status_code)
        retry_after = problem.headers.get("Retry-After")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {}}}


# Every answer is an HTML page; these are the statuses of the JSON API's survey routes.
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _html("The survey's page (or, after a save, the page saying it is saved)"),
    303: {"description": "After `next` or `back`: the survey's next or previous page"},
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
    request: Request, token: str, session: ReadSessionDep, part: str | None = None
) -> Response:
    """A page of the survey (`?part=N`; by default the first with a required question
    unanswered), with the answers saved so far; or the page saying why it cannot be
    answered."""
    opened = service.view(session, token=token)
    if opened.status is not SurveyStatus.open:
        return _state_page(request, opened)
    number = _part_number(part, opened) or _resume_at(opened)
    return _part_page(request, session, opened, number, shown=_as_typed(opened.instance.answers))


@router.post("/{token}", response_class=HTMLResponse)
def answer_survey(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    """Keep this page's answers and go on (`action`: `next`, `back`, `save`), or submit
    the survey (`action=submit`, on its last page)."""
    opened = service.find(session, token=token, now=utcnow())
    if opened.status is not SurveyStatus.open:
        return _state_page(request, opened)
    expected = _csrf_token(session, opened)
    if not hmac.compare_digest(first(form, "csrf_token").encode(), expected.encode()):
        return _status_page(request, _PAGE_EXPIRED, opened=opened, status_code=403)
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
    service.save(session, token=token, answers=parsed.answers, clear=unanswered)
    parts = len(opened.instruments)
    if action == "submit" and number == parts:
        return _submit(request, session, opened, token=token)
    if action == "next" and number < parts:
        return _redirect(token, number + 1)
    if action == "back" and number > 1:
        return _redirect(token, number - 1)
    return page(
        request,
        "survey/saved.html",
        {**_common(opened), "closes_on": opened.instance.closes_on, "part": number},
        secret_url=True,
    )


def _submit(request: Request, session: Session, opened: OpenedSurvey, *, token: str) -> Response:
    try:
        done = service.submit(session, token=token, answers={})
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
            shown=_as_typed(opened.instance.answers),
            problems=problems,
        )
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
            **_common(opened),
            "support_text": definition.support_text,
            "crisis_text": definition.crisis_text if done.alerts else None,
            "next_survey_on": min(upcoming, default=None),
        },
        secret_url=True,
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
    items = {item.code: item for item in opened.items}
    messages: dict[str, str] = {}
    summary = []
    for problem in problems:
        item = items.get(str(problem.loc[0])) if problem.loc else None
        if item is None:
            summary.append({"href": "#main-content", "message": problem.msg})
            continue
        # Worded the same beside the question and in the summary, naming the question.
        messages[item.code] = f"{problem.msg} for “{_shortened(item.text)}”"
        summary.append({"href": f"#{_first_input(item)}", "message": messages[item.code]})
    return page(
        request,
        "survey/part.html",
        {
            **_common(opened),
            "instrument": instrument,
            "part": number,
            "parts": len(opened.instruments),
            "csrf_token": _csrf_token(session, opened),
            "errors": summary,
            "messages": messages,
            "shown": defaultdict(list, shown),
            "hints": {item.code: hint for item in instrument.items if (hint := _hint(item))},
        },
        status_code=422 if problems else 200,
        secret_url=True,
    )


def _common(opened: OpenedSurvey) -> dict[str, Any]:
    return {
        "study_title": opened.definition.title,
        "timepoint_name": service.timepoint_name(opened.instance.timepoint),
        "support_text": opened.definition.support_text,
    }


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


def _shortened(text: str, most: int = 60) -> str:
    """The start of a question, cut at a word, to name it in an error message."""
    if len(text) <= most:
        return text
    return text[:most].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _first_input(item: Item) -> str:
    """The id of the question's first input (where an error summary link goes)."""
    if item.type in (ItemType.choice, ItemType.multi_choice, ItemType.boolean):
        return f"{item.code}-1"
    return item.code


def _hint(item: Item) -> str | None:
    if item.type in (ItemType.integer, ItemType.number):
        kind = "a whole number" if item.type is ItemType.integer else "a number"
        if item.min is not None and item.max is not None:
            return f"Enter {kind} from {item.min:g} to {item.max:g}"
        if item.min is not None:
            return f"Enter {kind}, {item.min:g} or more"
        if item.max is not None:
            return f"Enter {kind}, {item.max:g} or less"
    return None


def _as_typed(answers: Mapping[str, Any]) -> dict[str, list[str]]:
    """Saved answers as the form's fields would carry them."""
    shown: dict[str, list[str]] = {}
    for code, value in answers.items():
        if isinstance(value, bool):
            shown[code] = [YES if value else NO]
        elif isinstance(value, list):
            shown[code] = [str(v) for v in value]
        else:
            shown[code] = [str(value)]
    return shown


def _redirect(token: str, number: int) -> Response:
    response = RedirectResponse(f"/s/{token}?part={number}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# --- the pages of a link that cannot be answered -------------------------------------
Text = tuple[str, tuple[str, ...]]

_UNKNOWN: Text = (
    "We cannot find this survey",
    (
        "The link may be incomplete. Check that you used the whole link from your email, "
        "or open the email again and tap the link there.",
    ),
)
_REPLACED: Text = (
    "This link is no longer used",
    (
        "We sent you a newer link for this survey. Please use the link in the most recent "
        "email from the study team.",
    ),
)


def _replaced_unsent(support: str | None) -> Text:
    """A replaced link whose newer one was not emailed: say so, and who to ask."""
    told = (
        "The study team replaced this link with a new one. Please contact the study team "
        "to get the new link.",
    )
    return ("This link is no longer used", told + ((support,) if support else ()))


_CANCELLED: Text = (
    "You do not need to fill in this survey",
    ("This survey was cancelled. You do not need to do anything.",),
)
_COMPLETED: Text = (
    "You have already sent your answers",
    ("Thank you. The study team has your answers. There is nothing more you need to do.",),
)
_NOT_OPEN: Text = (
    "This survey is not open yet",
    ("We will email you when it opens. You can fill it in from then.",),
)
_CLOSED: Text = (
    "This survey has closed",
    ("The time to fill in this survey has ended. You do not need to do anything.",),
)
_TOO_MANY: Text = (
    "Please wait a minute",
    (
        "There were too many tries to open survey links from your connection. "
        "Wait a minute, then open your link again.",
    ),
)
_BUSY: Text = (
    "Sorry, the survey is busy",
    ("Please try again in a few minutes. Any answers you saved are kept.",),
)
_PAGE_EXPIRED: Text = (
    "This page has expired",
    ("Open the survey again from the link in your email. Any answers you saved are kept.",),
)
_TOO_LONG: Text = (
    "Your answers are too long to send",
    (
        "Please go back, make your longest answer shorter, and send the page again."
        " Any answers you saved before are kept.",
    ),
)
_BROKEN: Text = (
    "Sorry, something went wrong",
    ("Please try again later. Any answers you saved are kept.",),
)


def _state_page(request: Request, opened: OpenedSurvey) -> Response:
    """The page of a survey that is not open, with the status its JSON answer has."""
    instance = opened.instance
    match opened.status:
        case SurveyStatus.scheduled:
            heading, _ = _NOT_OPEN
            text: Text = (
                heading,
                (
                    f"You can fill it in from {longdate(instance.opens_on)}. "
                    "We will email you when it opens.",
                ),
            )
            return _status_page(request, text, opened=opened, status_code=409)
        case SurveyStatus.completed:
            return _status_page(request, _COMPLETED, opened=opened, status_code=409)
        case SurveyStatus.missed:
            heading, _ = _CLOSED
            text = (
                heading,
                (
                    f"The time to fill in this survey ended on {longdate(instance.closes_on)}."
                    " You do not need to do anything.",
                ),
            )
            return _status_page(request, text, opened=opened, status_code=410)
        case _:
            return _status_page(request, _CANCELLED, opened=opened, status_code=410)


def _error_page(request: Request, error: Exception, status_code: int) -> Response:
    match error:
        case errors.UnknownSurveyLink():
            text = _UNKNOWN
        case errors.SurveyLinkReplaced():
            text = _REPLACED if error.newer_sent else _replaced_unsent(error.support)
        case errors.SurveyCancelled():
            text = _CANCELLED
        case errors.SurveyAlreadyCompleted():
            text = _COMPLETED
        case errors.SurveyNotOpenYet():
            text = _NOT_OPEN
        case errors.SurveyClosed():
            text = _CLOSED
        case errors.TooManyAttempts():
            text = _TOO_MANY
        case _ if status_code == 503:
            text = _BUSY
        case _ if status_code < 500:
            text = _PAGE_EXPIRED  # a form this page did not send (too large, malformed)
        case _:
            text = _BROKEN
    return _status_page(request, text, status_code=status_code)


def too_large_page(scope: Scope) -> Response | None:
    """The page for a form too large to take, on a survey's address (else None)."""
    if not str(scope.get("path", "")).startswith("/s/"):
        return None
    return _status_page(Request(scope), _TOO_LONG, status_code=413)


def _status_page(
    request: Request, text: Text, *, opened: OpenedSurvey | None = None, status_code: int
) -> Response:
    heading, paragraphs = text
    context: dict[str, Any] = {"heading": heading, "paragraphs": paragraphs}
    if opened is not None:
        context |= _common(opened)
    return page(request, "survey/status.html", context, status_code=status_code, secret_url=True)
