"""Every fixed text of the participant pages and messages is translated into every
language a study may choose (SPEC 10: 100% of fixed texts), with its placeholders kept,
and the stylesheet lays pages out for right-to-left languages too.

The texts are extracted from the sources babel.cfg lists, as `make messages` does; a
failure names each text and language, so the fix is to run `make messages` and
translate what it lists.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from app.i18n.catalogs import LOCALE
from app.i18n.extraction import extract
from app.i18n.languages import LANGUAGES, SOURCE_LANGUAGE

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]")


def _catalog(code: str) -> dict[object, object]:
    """The language's catalogs, merged: message id → message."""
    merged: dict[object, object] = {}
    for path in sorted((LOCALE / code / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as file:
            catalog: Catalog = read_po(file, locale=code)
        for message in catalog:
            if message.id:
                merged[message.id] = message
    return merged


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def test_every_fixed_text_is_translated_into_every_language():
    texts = [m for m in extract(ROOT) if m.id]
    assert len(texts) > 50  # the extraction found the survey pages' texts
    problems = []
    for code in LANGUAGES:
        if code == SOURCE_LANGUAGE:
            continue
        translated = _catalog(code)
        for message in texts:
            found = translated.get(message.id)
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = () if found is None else found.string  # type: ignore[attr-defined]
            strings = strings if isinstance(strings, tuple) else (strings,)
            if found is None or not all(s and s.strip() for s in strings):
                problems.append(f"{code}: missing {ids[0]!r}")
            elif found.fuzzy:  # type: ignore[attr-defined]
                problems.append(f"{code}: fuzzy {ids[0]!r}")
            else:
                wanted = _placeholders(ids[-1])
                for string in strings:
                    if _placeholders(string) != wanted:
                        problems.append(f"{code}: placeholders differ in {string!r}")
    assert not problems, "\n".join(problems)


def test_the_stylesheet_uses_logical_properties_only():
    """Right-to-left pages (Arabic) mirror the layout only if no rule names a side."""
    css = (ROOT / "app" / "web" / "static" / "trialdesk.css").read_text(encoding="utf-8")
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    sided = []
    for prop, value in re.findall(r"(?<![\w-])([a-z-]+)\s*:\s*([^;}]*)", css):
        names_a_side = re.fullmatch(r"(margin|padding|border)-(left|right)(-\w+)*|left|right", prop)
        aligns_to_a_side = prop in ("float", "clear", "text-align") and re.search(
            r"\b(left|right)\b", value
        )
        if names_a_side or aligns_to_a_side:
            sided.append(f"{prop}: {value.strip()}")
    assert not sided, sided
