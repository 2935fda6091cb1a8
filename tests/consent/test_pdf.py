"""The consent PDF (pure): Markdown as text, the manifest, Arabic shaped and readable."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pypdf import PdfReader

from app.consent import pdf
from app.i18n import catalogs
from app.studies.definition import ConsentDocument

TEXT = {
    "title": "الموافقة",
    "sections": [{"heading": "مقدمة", "body": "يمكنك **الانسحاب** في أي وقت.\n\n- أ\n- ب"}],
    "quiz": [
        {
            "code": "leave",
            "question": "هل يمكنك الانسحاب؟",
            "options": [{"value": "yes", "label": "نعم"}, {"value": "no", "label": "لا"}],
            "answer": "yes",
            "feedback": "نعم",
        }
    ],
}


def test_markdown_becomes_paragraphs_and_list_items_without_markup() -> None:
    blocks = pdf.blocks("Leave **any** time.\n\n1. one\n2. two", "markdown")
    assert [(b.kind, b.marker, b.text) for b in blocks][:3] == [
        ("p", "", "Leave any time."),
        ("li", "1.", "one"),
        ("li", "2.", "two"),
    ]
    cleaned = pdf.blocks("<p>Hi<script>alert(1)</script></p><ul><li>a</li></ul>", "html")
    assert [(b.kind, b.text) for b in cleaned] == [("p", "Hi"), ("li", "a")]


def test_an_arabic_consent_is_shaped_and_reads_back_with_its_manifest() -> None:
    document = ConsentDocument.model_validate({"version": "3.1", "texts": {"ar": TEXT}})
    signature = pdf.Signature(
        name="محمد علي",
        signed_at=datetime(2026, 12, 7, 21, 0, tzinfo=UTC),
        zone="Asia/Amman",
        meaning="consent to take part",
        version="3.1",
        language="ar",
        document_sha256="ab" * 32,
        fda_regulated=True,
    )
    with catalogs.speaking("ar"):
        data = pdf.render(document, signature, study_title="S", answers={"leave": "yes"})
    shown = "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    for expected in ("الموافقة", "محمد علي", "3.1", "ab" * 32, "Asia/Amman"):
        assert expected in shown, expected
    assert "نعم" in shown and "11.50" in shown
    # The study's day (UTC+3), in whichever order the reader's bidi pass returns digits.
    assert "2026-12-08" in shown or "08-12-2026" in shown
