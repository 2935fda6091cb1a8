"""The consent steps as pages, for whoever signs: an applicant (`/join/a/{token}`) or a
participant invited to re-consent (`/consent/{token}`). The document one section a
page (short pages read well on a phone), the quiz with feedback on each wrong answer
and a retry, check your answers, and the declaration with the typed name and box.

The quiz answers that passed travel with the forms of "check your answers" and the
signature page (hidden fields) and are marked again when the person signs: nothing
half-done is stored, and only a passing set can be signed with.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from app.consent.documents import document_sha256, sections
from app.consent.quiz import Marked
from app.i18n import catalogs
from app.i18n.catalogs import gettext as _
from app.i18n.languages import LANGUAGES
from app.join import checks, forms
from app.join.service import Opened
from app.studies.definition import ConsentDocument, ConsentText
from app.web.forms import Form
from app.web.pages import page

MAX_ATTEMPTS_FIELD = 1000  # the hidden count of quiz attempts (re-consent) is bounded


@dataclass(frozen=True)
class Signer:
    """Who is reading and signing, and where their pages are."""

    base: str  # the address of their steps: "/join/a/<token>" or "/consent/<token>"
    opened: Opened
    language: str
    document: ConsentDocument
    name: str | None
    email: str | None
    phone: str | None
    before_first: str | None  # "Back" from the first section (the contact details)
    contact_link: str | None  # where "Change" on check your answers goes

    @property
    def text(self) -> ConsentText:
        return self.document.texts[self.language]

    @property
    def sha256(self) -> str:
        """What the person reads, as a signature binds to it (`document_sha256`)."""
        return document_sha256(self.document, self.language)


DOCUMENT_FIELD = "document"  # the SHA-256 of the document a page showed, carried along


def updated(signer: Signer) -> Response:
    """Back to the first section, saying the information changed (an amendment while
    the person was reading): they must read what they sign."""
    return go(f"{signer.base}/consent/1?updated=1")


def read_other(signer: Signer, given: str | None) -> bool:
    """Whether a page or form says it showed another document than the one now active
    (nothing given: nothing to compare, but see `bound`)."""
    return given is not None and not hmac.compare_digest(
        given[:64].encode(), signer.sha256.encode()
    )


def bound(signer: Signer, form: Form) -> bool:
    """Whether a signature's form carries the SHA-256 of the document now active."""
    given = form.get(DOCUMENT_FIELD)
    return given is not None and len(given) == 1 and not read_other(signer, given[0])


def go(path: str) -> Response:
    """See-other to one of the person's steps, without a referrer (the path is secret)."""
    response = RedirectResponse(path, status_code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def personal(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    opened: Opened,
    language: str,
    status_code: int = 200,
) -> Response:
    """A page of someone's own link: in their language, no referrer, not cached."""
    title = opened.in_language(language).shown_to_participants()
    return page(
        request,
        template,
        {"study_title": title, "language": language, **context},
        status_code=status_code,
        secret_url=True,
        language=language,
    )


def _render(
    request: Request, signer: Signer, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    return personal(
        request,
        template,
        context,
        opened=signer.opened,
        language=signer.language,
        status_code=status_code,
    )


def section_page(request: Request, signer: Signer, number: str) -> Response:
    """Section `number` of the document (the first for anything else). Its links carry
    the document's SHA-256: a page of a replaced document leads back to the first."""
    if read_other(signer, request.query_params.get(DOCUMENT_FIELD)):
        return updated(signer)
    text = signer.text
    shown = sections(text)
    at = int(number) if number.isascii() and number.isdigit() and len(number) < 4 else 0
    if not 1 <= at <= len(shown):
        return go(f"{signer.base}/consent/1")
    after = f"consent/{at + 1}" if at < len(shown) else ("quiz" if text.quiz else "check")
    carried = f"?{DOCUMENT_FIELD}={signer.sha256}"
    back = f"{signer.base}/consent/{at - 1}{carried}" if at > 1 else signer.before_first
    return _render(
        request,
        signer,
        "join/section.html",
        {
            "title": text.title,
            "section": shown[at - 1],
            "number": at,
            "count": len(shown),
            "next": f"{signer.base}/{after}{carried}",
            "back": back,
            "updated": request.query_params.get("updated") == "1" and at == 1,
        },
    )


def quiz_page(
    request: Request,
    signer: Signer,
    *,
    answers: Mapping[str, str],
    marked: Marked | None = None,
    attempts: int = 0,
) -> Response:
    """The quiz; after an attempt, each wrong answer's feedback (or, for questions left
    out, the errors of PAGES.md)."""
    text = signer.text
    problems: list[tuple[str, str]] = []
    if marked is not None and marked.unanswered:
        with catalogs.speaking(signer.language):
            problems = [
                (
                    f"q-{code}-1",
                    _("Select an answer to question %(n)s") % {"n": _position(text, code)},
                )
                for code in marked.unanswered
            ]
    judged = marked is not None and not marked.unanswered
    return _render(
        request,
        signer,
        "join/quiz.html",
        {
            "title": text.title,
            "quiz": text.quiz,
            "answers": answers,
            "wrong": set(marked.wrong) if marked and judged else set(),
            "failed": judged and marked is not None and not marked.passed,
            "attempts": attempts,
            "errors": [{"href": f"#{f}", "message": m} for f, m in problems],
            "messages": {f.removeprefix("q-").rsplit("-", 1)[0]: m for f, m in problems},
            "back": f"{signer.base}/consent/{len(text.sections)}",
            "document": signer.sha256,
        },
        422 if problems else 200,
    )


def _position(text: ConsentText, code: str) -> int:
    return next(i for i, q in enumerate(text.quiz, start=1) if q.code == code)


def quiz_answers(signer: Signer, form: Form) -> dict[str, str]:
    """The quiz's answers in a form: only its questions, only their options' values."""
    return {
        q.code: chosen
        for q in signer.text.quiz
        if (chosen := forms.choice(form, f"q-{q.code}", [o.value for o in q.options]))
    }


def attempts_of(form: Form) -> int:
    """The hidden count of quiz attempts carried by a re-consent's forms (bounded)."""
    given = forms.value(form, "attempts")
    number = int(given) if given.isascii() and given.isdigit() and len(given) < 5 else 0
    return min(number, MAX_ATTEMPTS_FIELD)


def check_page(
    request: Request, signer: Signer, answers: Mapping[str, str], attempts: int = 0
) -> Response:
    """Check your answers: name, email, language and version, before signing."""
    return _render(
        request,
        signer,
        "join/check.html",
        {
            "name": signer.name,
            "email": signer.email,
            "phone": signer.phone,
            "language_name": LANGUAGES[signer.language].name,
            "version": signer.document.version,
            "title": signer.text.title,
            "answers": answers,
            "attempts": attempts,
            "here": signer.base,
            "contact_link": signer.contact_link,
            "document": signer.sha256,
        },
    )


def sign_problems(signer: Signer, form: Form) -> list[tuple[str, str]]:
    """What is missing from a signature: the typed full name (as given, ignoring case
    and spaces) and the box."""
    typed = forms.value(form, "typed_name")
    problems = []
    with catalogs.speaking(signer.language):
        if not typed.strip():
            problems.append(("typed_name", _("Type your full name to sign")))
        elif not checks.names_match(typed, signer.name or ""):
            problems.append(
                (
                    "typed_name",
                    _("Type your full name as you gave it: %(name)s") % {"name": signer.name},
                )
            )
        if forms.value(form, "agree") != "yes":
            problems.append(("agree", _("Tick the box to confirm you agree to take part")))
    return problems


def sign_page(
    request: Request,
    signer: Signer,
    form: Form,
    answers: Mapping[str, str],
    problems: list[tuple[str, str]],
    attempts: int = 0,
) -> Response:
    return _render(
        request,
        signer,
        "join/sign.html",
        {
            "title": signer.text.title,
            "version": signer.document.version,
            "answers": answers,
            "attempts": attempts,
            "document": signer.sha256,
            "typed": {
                "typed_name": forms.value(form, "typed_name"),
                "agree": forms.value(form, "agree"),
            },
            "errors": [{"href": f"#{f}", "message": m} for f, m in problems],
            "messages": dict(problems),
        },
        422 if problems else 200,
    )
