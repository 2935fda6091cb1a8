"""What every page shares: one Jinja2 environment (autoescaped), the base layout, the
static files, and the headers every page is sent with."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from app.i18n import catalogs
from app.i18n.dates import long_date
from app.i18n.languages import SOURCE_LANGUAGE
from app.i18n.languages import language as language_named

APP = Path(__file__).resolve().parent.parent
STATIC = Path(__file__).resolve().parent / "static"

# No inline script or style anywhere: everything comes from /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

# A person's choice of text size on the survey pages (`?text=large`, or the page's
# script), kept in a cookie; every page renders with it (`<html class="text-large">`).
TEXT_SIZE_COOKIE = "text_size"
TEXT_SIZES = ("standard", "large")

environment = Environment(
    loader=ChoiceLoader(
        [
            FileSystemLoader(APP / "web" / "templates"),
            FileSystemLoader(APP / "surveys" / "templates"),
            FileSystemLoader(APP / "console" / "templates"),
            FileSystemLoader(APP / "join" / "templates"),
        ]
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
# `_()`, `gettext` and `ngettext` in templates: the language of the page being rendered
# (`page(..., language=)`); new-style, so `_("Part %(n)s", n=2)` formats after translating.
environment.install_gettext_callables(  # type: ignore[attr-defined]
    catalogs.gettext, catalogs.ngettext, newstyle=True
)


def longdate(day: date) -> str:
    """A date as people write it, in the page's language: `Monday 12 April 2027`,
    `lunes, 12 de abril de 2027`."""
    return long_date(day)


def shortdate(day: date) -> str:
    """A date as people write it in a table: `12 Apr 2027`."""
    return f"{day.day} {day:%b %Y}"


# Phone numbers of 3 digits (988, 911) or of 7 and more (215-555-0100, +44 20 7946 0000).
_PHONE = re.compile(r"(?<![\w+])(\+?\d[\d\- ]{5,}\d|\b\d{3}\b)(?![\w-])")


def phone_links(text: str) -> Markup:
    """The text, escaped, with phone numbers as `tel:` links a phone can call."""

    def link(match: re.Match[str]) -> str:
        number = match.group(0)
        digits = re.sub(r"[^\d+]", "", number)
        return f'<a class="link" href="tel:{digits}">{number}</a>'

    return Markup(_PHONE.sub(link, str(escape(text))))


def pairs(values: Any) -> list[tuple[str, str]]:
    """Each value as (value, label) for a list of choices: `1.0` is shown as `1.0`."""
    return [(str(v), str(v)) for v in values]


def level_pairs(values: Any) -> list[tuple[str, str]]:
    """Codes as choices, labelled in words: `bipolar_ii` is shown as `Bipolar ii`."""
    return [(str(v), str(v).replace("_", " ").capitalize()) for v in values]


def share(rate: float) -> str:
    """A share as a percentage that never rounds a non-zero share to 0% (1 of 300 is
    0.3%, not 0%), nor one short of the whole to 100%."""
    percent = rate * 100
    if percent == 0 or percent >= 100:
        return f"{percent:.0f}%"
    if percent < 1 or percent > 99:
        shown = f"{percent:.1f}"
        if shown in ("0.0", "100.0"):
            shown = "<0.1" if percent < 1 else ">99.9"
        return f"{shown}%"
    return f"{percent:.0f}%"


environment.filters["longdate"] = longdate
environment.filters["share"] = share
environment.filters["shortdate"] = shortdate
environment.filters["zip_pairs"] = pairs
environment.filters["level_pairs"] = level_pairs
environment.filters["phone_links"] = phone_links


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    personal: bool = True,
    secret_url: bool = False,
    language: str | None = None,
) -> HTMLResponse:
    """Render a page with the headers every page gets: a strict Content-Security-Policy,
    no sniffing, no framing; `Cache-Control: no-store` on anything `personal`; no
    referrer at all when the page's address is itself a secret (a survey link).
    `language` (a code of `app.i18n.languages`) sets `<html lang dir>` and the language
    `_()` translates into; staff pages are in English."""
    size = request.cookies.get(TEXT_SIZE_COOKIE)
    with catalogs.speaking(language or SOURCE_LANGUAGE) as code:
        shown = language_named(code)
        context = {
            "text_size": size if size in TEXT_SIZES else "standard",
            "lang": shown.code,
            "dir": shown.direction,
            **context,
        }
        html = environment.get_template(template).render(request=request, **context)
    response = HTMLResponse(html, status_code=status_code)
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer" if secret_url else "same-origin"
    if personal:
        headers["Cache-Control"] = "no-store"
    return response


def mount_static(app: FastAPI) -> None:
    """Serve the stylesheet, scripts and icon at /static, and the icon at /favicon.ico too
    (where browsers and tools look when a page names none)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_route("/favicon.ico", _favicon, include_in_schema=False)


async def _favicon(_request: Request) -> Response:
    return FileResponse(
        STATIC / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )
