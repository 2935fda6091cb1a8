"""The fixed texts of participant pages and messages in each language (Babel catalogs).

Message ids are the English texts. Each language's catalogs are the `.po` files in
`locale/<code>/LC_MESSAGES/` (one per part of the product: `survey.po`, `join.po`, ...),
read with Babel once per process and merged; no compiled `.mo` file is kept. A text
with no translation (or a fuzzy one) falls back to English: the completeness test
(`tests/i18n`) keeps that from reaching a release.

The language of what is being rendered is a context variable: `speaking(code)` sets it
around a page or a message, and `gettext` reads it, so templates and Python code call
`_()` the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from app.i18n.languages import LANGUAGES, SOURCE_LANGUAGE

LOCALE = Path(__file__).resolve().parent / "locale"
_current: ContextVar[str] = ContextVar("language", default=SOURCE_LANGUAGE)


@cache
def translations(code: str) -> NullTranslations:
    """A language's catalogs, merged (compiled in memory: fuzzy entries are left out,
    plural forms follow the catalog's rule)."""
    merged: NullTranslations = NullTranslations()
    if code == SOURCE_LANGUAGE:
        return merged
    for path in sorted((LOCALE / code / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as file:
            catalog = read_po(file, locale=code)
        compiled = BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        part = Translations(compiled)
        if isinstance(merged, Translations):
            merged.merge(part)
        else:
            merged = part
    return merged


@contextmanager
def speaking(code: str | None) -> Iterator[str]:
    """Render what runs inside in this language (the source language if none)."""
    code = code if code in LANGUAGES else SOURCE_LANGUAGE
    token = _current.set(code)
    try:
        yield code
    finally:
        _current.reset(token)


def current_language() -> str:
    """The language being rendered."""
    return _current.get()


def gettext(message: str) -> str:
    """The text in the current language (English when it has no translation)."""
    return translations(_current.get()).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural text for `n`, in the current language."""
    return translations(_current.get()).ungettext(singular, plural, n)
