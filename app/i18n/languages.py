"""The languages participant pages and messages come in (pure).

A study may list only these: each has a message catalog with every fixed text of the
participant pages and messages (`app/i18n/locale/<code>/LC_MESSAGES/messages.po`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1, as `<html lang>` takes it
    name: str  # the language named in itself, as the language list shows it
    direction: str  # "ltr" or "rtl", as `<html dir>` takes it


LANGUAGES: dict[str, Language] = {
    "en": Language("en", "English", "ltr"),
    "es": Language("es", "Español", "ltr"),
    "ar": Language("ar", "العربية", "rtl"),
}
SOURCE_LANGUAGE = "en"  # the catalogs' message ids are the English texts


def language(code: str) -> Language:
    """The language with this code (codes are validated before they get here)."""
    return LANGUAGES[code]
