"""How much of what a participant reads is translated, per language of the demo study.

Run from the project root:

    python benchmarks/translated.py

For each language of the demo study (app/studies/demo/peer-support.yaml) other than its
first, it prints two shares (and for the product's other languages, the first):

- fixed texts: the texts of the participant pages and emails (every message `make
  messages` extracts from the sources babel.cfg lists) that the language's catalogs
  translate (not empty, not fuzzy);
- the study's texts: the demo's own participant-visible texts
  (`studies.translation.texts`: titles, questions, options, crisis and support texts...)
  that its `translations` give.

Both are 100% in a release: tests/i18n/test_catalogs.py fails on any missing fixed
text, and the study's validation refuses a definition with a missing translation.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from babel.messages.pofile import read_po  # noqa: E402

from app.demo import demo_definition  # noqa: E402
from app.i18n.catalogs import LOCALE  # noqa: E402
from app.i18n.extraction import extract  # noqa: E402
from app.i18n.languages import LANGUAGES, SOURCE_LANGUAGE  # noqa: E402
from app.studies.definition import StudyDefinition  # noqa: E402
from app.studies.translation import texts  # noqa: E402


def _translated_ids(code: str) -> set[object]:
    done: set[object] = set()
    for path in sorted((LOCALE / code / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as file:
            for message in read_po(file, locale=code):
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                if message.id and not message.fuzzy and all(s and s.strip() for s in strings):
                    done.add(message.id)
    return done


def main() -> None:
    definition = StudyDefinition.model_validate(demo_definition())
    fixed = [m.id for m in extract(ROOT) if m.id]
    own = texts(definition)
    print(f"{'language':<10}{'fixed texts':>22}{'study texts':>22}")
    for code in definition.languages[1:]:
        done = _translated_ids(code)
        fixed_done = sum(1 for message_id in fixed if message_id in done)
        given = definition.translations.get(code, {})
        own_done = sum(1 for path in own if given.get(path, "").strip())
        print(
            f"{code:<10}"
            f"{f'{fixed_done}/{len(fixed)} ({fixed_done / len(fixed):.0%})':>22}"
            f"{f'{own_done}/{len(own)} ({own_done / len(own):.0%})':>22}"
        )
    # The product's other languages, which the demo does not list: fixed texts only.
    for code in LANGUAGES:
        if code != SOURCE_LANGUAGE and code not in definition.languages:
            done = _translated_ids(code)
            fixed_done = sum(1 for message_id in fixed if message_id in done)
            shown = f"{fixed_done}/{len(fixed)} ({fixed_done / len(fixed):.0%})"
            print(f"{code:<10}{shown:>22}{'(not in the demo)':>22}")


if __name__ == "__main__":
    main()
