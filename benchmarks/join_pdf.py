"""How long one signed consent's PDF takes to make (SPEC 10): prints ms per PDF for a
document of ten Markdown sections and five quiz questions, in English and in Arabic
(shaped by HarfBuzz). Run: PYTHONPATH=. python benchmarks/join_pdf.py"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from app.consent import pdf
from app.i18n import catalogs
from app.studies.definition import ConsentDocument

ROUNDS = 20
PARAGRAPH = {
    "en": "You may stop taking part at any time, without giving a reason. " * 6,
    "ar": "يمكنك التوقف عن المشاركة في أي وقت دون ذكر السبب. " * 6,
}


def text(language: str) -> dict[str, Any]:
    body = f"{PARAGRAPH[language]}\n\n- {PARAGRAPH[language][:60]}\n- {PARAGRAPH[language][:40]}"
    option = [{"value": "yes", "label": "Yes"}, {"value": "no", "label": "No"}]
    quiz = [
        {
            "code": f"q{i}",
            "question": PARAGRAPH[language][:80],
            "options": option,
            "answer": "yes",
            "feedback": "-",
        }
        for i in range(5)
    ]
    sections = [{"heading": f"Section {i}", "body": body} for i in range(10)]
    return {"title": "Consent", "sections": sections, "quiz": quiz}


def main() -> None:
    document = ConsentDocument.model_validate(
        {"version": "1.0", "texts": {"en": text("en"), "ar": text("ar")}}
    )
    for language in ("en", "ar"):
        signature = pdf.Signature(
            name="Pat Doe",
            signed_at=datetime.now(UTC),
            zone="America/New_York",
            meaning="consent to take part",
            version="1.0",
            language=language,
            document_sha256="0" * 64,
            fda_regulated=True,
        )
        with catalogs.speaking(language):
            pdf.render(document, signature, study_title="Study", answers={})  # warm the font
            started = time.perf_counter()
            for _ in range(ROUNDS):
                size = len(pdf.render(document, signature, study_title="Study", answers={}))
        ms = (time.perf_counter() - started) * 1000 / ROUNDS
        print(f"consent PDF ({language}): {ms:.0f} ms per PDF, {size // 1024} KiB")


if __name__ == "__main__":
    main()
