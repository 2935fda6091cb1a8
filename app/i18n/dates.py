"""Dates as participants read them, in the language being rendered.

English keeps the product's own form (`Monday 12 April 2027`, as GOV.UK writes dates);
other languages take Babel's full date of their locale (`lunes, 12 de abril de 2027`,
`الاثنين، 12 أبريل 2027`), so no participant page shows an English month name.
"""

from __future__ import annotations

from datetime import date

from babel.dates import format_date

from app.i18n.catalogs import current_language
from app.i18n.languages import SOURCE_LANGUAGE


def long_date(day: date, language: str | None = None) -> str:
    """The date in words, in `language` (default: the language being rendered)."""
    code = language or current_language()
    if code == SOURCE_LANGUAGE:
        return f"{day:%A} {day.day} {day:%B %Y}"
    return format_date(day, format="full", locale=code)
