"""Signing in and out of the console: ask for a link by email, open it, sign out.

The emailed link opens a page with one button: the link is used up only by that
button's post, so a mail scanner that fetches links signs nobody in. Every form here
carries a `csrf_token`: before sign-in it is bound to a random cookie of the browser
(or to the link itself), after it to the session.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from app.api.body import storable
from app.api.deps import SessionDep
from app.auth.service import hash_token
from app.config import Settings
from app.console.deps import (
    COOKIE,
    PREFIX,
    CheckedForm,
    StaffDep,
    console_key,
    console_router,
    same_origin,
    send_soon,
    signed_in,
    view,
)
from app.db.base import utcnow
from app.errors import NotAuthenticated
from app.users import sign_in as signing
from app.web.forms import FormDep, csrf_ok, csrf_token, first
from app.web.pages import page

FORM_COOKIE = "trialdesk_form"  # binds the sign-in form's csrf_token to this browser
NEXT_COOKIE = "trialdesk_next"  # the page asked for before signing in, to go on to
MAX_EMAIL_LENGTH = 320
TOKEN_LENGTH = 43

router = console_router()


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _email_form(
    request: Request, *, email: str = "", error: str | None = None, status_code: int = 200
) -> Response:
    nonce = request.cookies.get(FORM_COOKIE) or ""
    fresh = len(nonce) != TOKEN_LENGTH
    if fresh:
        nonce = secrets.token_urlsafe(32)
    context = {
        "email": email,
        "error": error,
        "csrf": csrf_token(console_key(request), bound_to=f"form:{nonce}"),
        "signed_out": request.query_params.get("signed_out") == "1",
    }
    response = view(request, "console/sign_in.html", context, status_code=status_code)
    if fresh:
        response.set_cookie(
            FORM_COOKIE,
            nonce,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=_settings(request).secure_cookies,
        )
    return response


def _local(path: str) -> str | None:
    """A console address of this site (where to go after signing in), or None."""
    plain = path.isascii() and all(c.isprintable() and c not in "\\;" for c in path)
    if plain and path.startswith(PREFIX) and len(path) <= 2000:
        return path
    return None


@router.get("/sign-in")
def sign_in_page(request: Request) -> Response:
    """The sign-in form: an email address, to send a one-time link to. The page that
    sent the visitor here (`next`) is remembered in this browser for after sign-in."""
    try:
        signed_in(request)
    except NotAuthenticated:
        response = _email_form(request)
        target = _local(request.query_params.get("next", ""))
        if target is not None:
            response.set_cookie(
                NEXT_COOKIE,
                target,
                path=PREFIX,
                max_age=3600,
                httponly=True,
                samesite="lax",
                secure=_settings(request).secure_cookies,
            )
        return response
    return RedirectResponse(PREFIX, status_code=303)


@router.post("/sign-in")
def ask_for_link(request: Request, session: SessionDep, form: FormDep) -> Response:
    """Email a sign-in link to the address, if it is a user's; the answer is the same
    whether it is or not."""
    nonce = request.cookies.get(FORM_COOKIE, "")
    if not same_origin(request) or not csrf_ok(
        console_key(request), bound_to=f"form:{nonce}", given=first(form, "csrf_token")
    ):
        return _email_form(
            request, error="The page had expired. Enter your email address again.", status_code=403
        )
    email = first(form, "email").strip()
    if not email or len(email) > MAX_EMAIL_LENGTH or "@" not in email or not storable(email):
        message = "Enter your email address, like name@example.org"
        return _email_form(request, email=email[:MAX_EMAIL_LENGTH], error=message, status_code=422)
    settings = _settings(request)
    queued = signing.mail_link(
        session,
        email=email,
        lifetime=timedelta(minutes=settings.sign_in_link_minutes),
        now=utcnow(),
    )
    response = view(
        request,
        "console/link_sent.html",
        {"email": email, "minutes": settings.sign_in_link_minutes},
    )
    return send_soon(request, response) if queued else response


def _link_page(request: Request, token: str, *, status_code: int = 200) -> Response:
    context = {"csrf": csrf_token(console_key(request), bound_to=f"link:{hash_token(token)}")}
    return page(request, "console/use_link.html", context, status_code=status_code, secret_url=True)


def _link_gone(request: Request) -> Response:
    return page(request, "console/link_gone.html", {}, status_code=410, secret_url=True)


@router.get("/sign-in/{token}")
def sign_in_link(request: Request, token: str) -> Response:
    """The page an emailed link opens: one button that signs in."""
    if len(token) != TOKEN_LENGTH:
        return _link_gone(request)
    return _link_page(request, token)


@router.post("/sign-in/{token}")
def use_link(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    """Use up the link, open a session (its cookie) and go to the console."""
    if len(token) != TOKEN_LENGTH:
        return _link_gone(request)
    if not same_origin(request) or not csrf_ok(
        console_key(request),
        bound_to=f"link:{hash_token(token)}",
        given=first(form, "csrf_token"),
    ):
        return _link_page(request, token, status_code=403)
    settings = _settings(request)
    try:
        _, cookie = signing.sign_in(
            session, token=token, lifetime=timedelta(hours=settings.console_session_hours)
        )
    except NotAuthenticated:
        return _link_gone(request)
    response = RedirectResponse(
        _local(request.cookies.get(NEXT_COOKIE, "")) or PREFIX, status_code=303
    )
    response.delete_cookie(NEXT_COOKIE, path=PREFIX)
    response.set_cookie(
        COOKIE,
        cookie,
        path="/",
        max_age=settings.console_session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: SessionDep, staff: StaffDep, form: CheckedForm) -> Response:
    """End this session, and go back to the sign-in page."""
    signing.sign_out(session, signed_in=staff.signed_in)
    response = RedirectResponse(f"{PREFIX}/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
