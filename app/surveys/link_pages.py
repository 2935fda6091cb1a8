"""The pages of a survey link that cannot be answered (unknown, not open yet, completed,
closed, replaced, cancelled) and of requests that fail: what happened, what to do, who to
contact, with the status code the JSON API gives; never data, never a stack trace."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from starlette.types import Scope

from app import errors
from app.i18n.catalogs import gettext, speaking
from app.surveys.names import survey_name
from app.surveys.scheduling import SurveyStatus
from app.surveys.service import OpenedSurvey
from app.web.pages import longdate, page

# A page's heading and paragraphs, as English message ids (`N_` marks them for
# `make messages`); `status_page` translates them into the page's language.
Text = tuple[str, tuple[str, ...]]


def N_(message: str) -> str:
    """Mark a text for translation where it is defined; translated where shown."""
    return message


_UNKNOWN: Text = (
    N_("We cannot find this survey"),
    (
        N_(
            "The link may be incomplete. Check that you used the whole link from your email, "
            "or open the email again and tap the link there."
        ),
    ),
)
_REPLACED: Text = (
    N_("This link is no longer used"),
    (
        N_(
            "We sent you a newer link for this survey. Please use the link in the most "
            "recent email from the study team."
        ),
    ),
)


def _replaced_unsent(support: str | None) -> Text:
    """A replaced link whose newer one was not emailed: say so, and who to ask."""
    told = (
        N_(
            "The study team replaced this link with a new one. Please contact the study "
            "team to get the new link."
        ),
    )
    return (N_("This link is no longer used"), told + ((support,) if support else ()))


_CANCELLED: Text = (
    N_("You do not need to fill in this survey"),
    (N_("This survey was cancelled. You do not need to do anything."),),
)
_COMPLETED: Text = (
    N_("You have already sent your answers"),
    (N_("Thank you. The study team has your answers. There is nothing more you need to do."),),
)
_NOT_OPEN: Text = (
    N_("This survey is not open yet"),
    (N_("We will email you when it opens. You can fill it in from then."),),
)
_CLOSED: Text = (
    N_("This survey has closed"),
    (N_("The time to fill in this survey has ended. You do not need to do anything."),),
)
_TOO_MANY: Text = (
    N_("Please wait a minute"),
    (
        N_(
            "There were too many tries to open survey links from your connection. "
            "Wait a minute, then open your link again."
        ),
    ),
)
_BUSY: Text = (
    N_("Sorry, the survey is busy"),
    (N_("Please try again in a few minutes. Any answers you saved are kept."),),
)
PAGE_EXPIRED: Text = (
    N_("This page has expired"),
    (N_("Open the survey again from the link in your email. Any answers you saved are kept."),),
)
_TOO_LONG: Text = (
    N_("Your answers are too long to send"),
    (
        N_(
            "Please go back, make your longest answer shorter, and send the page again."
            " Any answers you saved before are kept."
        ),
    ),
)
_BROKEN: Text = (
    N_("Sorry, something went wrong"),
    (N_("Please try again later. Any answers you saved are kept."),),
)


def state_page(request: Request, opened: OpenedSurvey) -> Response:
    """The page of a survey that is not open, with the status its JSON answer has."""
    instance = opened.instance
    match opened.status:
        case SurveyStatus.scheduled:
            heading, _ = _NOT_OPEN
            text: Text = (
                heading,
                (
                    gettext("You can fill it in from %(day)s. We will email you when it opens.")
                    % {"day": longdate(instance.opens_on)},
                ),
            )
            return status_page(request, text, opened=opened, status_code=409)
        case SurveyStatus.completed:
            return status_page(request, _COMPLETED, opened=opened, status_code=409)
        case SurveyStatus.missed:
            heading, _ = _CLOSED
            text = (
                heading,
                (
                    gettext(
                        "The time to fill in this survey ended on %(day)s."
                        " You do not need to do anything."
                    )
                    % {"day": longdate(instance.closes_on)},
                ),
            )
            return status_page(request, text, opened=opened, status_code=410)
        case _:
            return status_page(request, _CANCELLED, opened=opened, status_code=410)


def error_page(request: Request, error: Exception, status_code: int) -> Response:
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
            text = PAGE_EXPIRED  # a form this page did not send (too large, malformed)
        case _:
            text = _BROKEN
    return status_page(request, text, status_code=status_code)


def too_large_page(scope: Scope) -> Response | None:
    """The page for a form too large to take, on a survey's address (else None)."""
    if not str(scope.get("path", "")).startswith("/s/"):
        return None
    return status_page(Request(scope), _TOO_LONG, status_code=413)


def status_page(
    request: Request, text: Text, *, opened: OpenedSurvey | None = None, status_code: int
) -> Response:
    # In the participant's language when the survey is known (texts already translated,
    # and the study's own, are no message ids: they come back as they are).
    language = opened.language if opened is not None else None
    with speaking(language):
        heading = gettext(text[0])
        paragraphs = tuple(gettext(paragraph) for paragraph in text[1])
    context: dict[str, Any] = {"heading": heading, "paragraphs": paragraphs}
    if opened is not None:
        context |= common(opened)
    return page(
        request,
        "survey/status.html",
        context,
        status_code=status_code,
        secret_url=True,
        language=language,
    )


def common(opened: OpenedSurvey) -> dict[str, Any]:
    """What every page of an opened survey shows: the names participants see."""
    return {
        "study_title": opened.definition.shown_to_participants(),
        "timepoint_name": survey_name(opened.instance.timepoint),
        "support_text": opened.definition.support_text,
    }
