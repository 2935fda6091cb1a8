"""`make messages`: the fixed texts of the sources (babel.cfg) gathered and each
language's catalogs brought up to date with them.

Each language has one catalog per part of the product (`survey.po`, `join.po`): a new
text goes to the catalog of the part its source is in (`app/join/`, `app/consent/` and
their templates are `join`; everything else is `survey`), a text already in one of the
language's catalogs stays there (its translation kept, flagged fuzzy by Babel when its
English changed), and a text no source has any more leaves its catalog. The completeness
test (tests/i18n/test_catalogs.py) then names every text still to translate.

Run from the project's folder: `python -m app.i18n.extraction`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from app.i18n.catalogs import LOCALE
from app.i18n.languages import LANGUAGES, SOURCE_LANGUAGE

ROOT = LOCALE.parent.parent.parent
DOMAINS = ("survey", "join")
_JOIN_PARTS = ("app/join/", "app/consent/")


def extract(root: Path = ROOT) -> Catalog:
    """Every fixed text of the sources babel.cfg lists (keywords: Babel's defaults,
    `_`, `gettext`, `ngettext`, `N_`...), with where each is used."""
    with (root / "babel.cfg").open(encoding="utf-8") as file:
        method_map, options_map = parse_mapping_cfg(file)  # type: ignore[no-untyped-call]
    catalog = Catalog(locale=SOURCE_LANGUAGE, project="Trialdesk", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, strip_comment_tags=True
    ):
        catalog.add(
            message,
            None,
            [(filename, lineno)],
            auto_comments=comments,
            context=context,
            flags=("python-format",) if _formatted(message) else (),
        )
    return catalog


def _formatted(message: str | tuple[str, ...]) -> bool:
    texts = (message,) if isinstance(message, str) else message
    return any("%(" in text for text in texts)


def domain_of(locations: Sequence[tuple[str, int]]) -> str:
    """The catalog a new text goes to: `join` when its sources are the join pages'."""
    if locations and all(path.startswith(_JOIN_PARTS) for path, _ in locations):
        return "join"
    return "survey"


def update(root: Path = ROOT) -> list[Path]:
    """Bring every language's catalogs up to date with the sources; the files written."""
    template = extract(root)
    written = []
    for code in LANGUAGES:
        if code == SOURCE_LANGUAGE:
            continue
        folder = root / "app" / "i18n" / "locale" / code / "LC_MESSAGES"
        folder.mkdir(parents=True, exist_ok=True)
        catalogs = {domain: _read(folder / f"{domain}.po", code) for domain in DOMAINS}
        home = {
            message.id: domain
            for domain, catalog in catalogs.items()
            for message in catalog
            if message.id
        }
        for domain, catalog in catalogs.items():
            mine = Catalog(locale=code, project="Trialdesk", charset="utf-8")
            for message in template:
                if not message.id:
                    continue
                if home.get(message.id, domain_of(message.locations)) == domain:
                    mine[message.id] = message
            catalog.update(mine, no_fuzzy_matching=True)
            catalog.obsolete.clear()
            if len(catalog) == 0 and not (folder / f"{domain}.po").exists():
                continue
            with (folder / f"{domain}.po").open("wb") as file:
                write_po(file, catalog, width=100, omit_header=False, no_location=True)
            written.append(folder / f"{domain}.po")
    return written


def _read(path: Path, code: str) -> Catalog:
    if not path.exists():
        return Catalog(locale=code, project="Trialdesk", charset="utf-8")
    with path.open("rb") as file:
        return read_po(file, locale=code)


if __name__ == "__main__":
    for path in update():
        print(path.relative_to(ROOT), file=sys.stderr)
