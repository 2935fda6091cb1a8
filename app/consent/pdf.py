"""The signed consent as a PDF (fpdf2): the copy the participant is emailed and the
record staff open later.

It holds what the person was shown (the document's title and sections, as plain
paragraphs and lists), the quiz questions with the answers they gave, and the
signature manifest: printed name, date and time signed (UTC and the study's zone),
the meaning of the signature, the document's version, language and SHA-256, and for
FDA-regulated studies the 21 CFR 11.50 wording.

Text is set in DejaVu Sans, a Unicode TrueType font with Latin, Greek, Cyrillic and
Arabic glyphs (Debian's `fonts-dejavu-core`, which `make test` and `make run`
install); Arabic goes through fpdf2's text shaping (HarfBuzz, via `uharfbuzz`) so its
letters join and run right to left. The manifest's labels are translated like every
fixed text: the caller renders inside `catalogs.speaking(language)`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF

from app.consent.documents import body_html
from app.i18n.catalogs import gettext as _
from app.i18n.languages import language as language_of
from app.studies.definition import ConsentDocument

# Where the font is looked for: TRIALDESK_CONSENT_FONT_DIR, then Debian's and
# Fedora's/Homebrew's usual places.
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu-sans-fonts",
    "/usr/share/fonts/dejavu",
    "/opt/homebrew/share/fonts",
    "/usr/local/share/fonts",
)
REGULAR, BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"
_FAMILY = "DejaVu"
_HARFBUZZ_SCRIPT = {"ar": ("arab", "ara")}


class FontMissing(RuntimeError):
    """No DejaVu Sans on this machine: install fonts-dejavu-core (see docs/consent.md)."""


@cache
def font_dir() -> Path:
    """The directory holding DejaVu Sans (regular and bold)."""
    configured = os.environ.get("TRIALDESK_CONSENT_FONT_DIR")
    for candidate in ((configured,) if configured else ()) + FONT_DIRS:
        path = Path(candidate)
        if (path / REGULAR).is_file() and (path / BOLD).is_file():
            return path
    raise FontMissing(
        f"{REGULAR} not found in {', '.join(FONT_DIRS)}: install fonts-dejavu-core "
        "or set TRIALDESK_CONSENT_FONT_DIR"
    )


@dataclass(frozen=True)
class Signature:
    """The signature manifest (21 CFR 11.50: printed name, date and time, meaning)."""

    name: str
    signed_at: datetime  # UTC
    zone: str  # the study's IANA zone
    meaning: str
    version: str
    language: str
    document_sha256: str
    fda_regulated: bool


@dataclass(frozen=True)
class Block:
    kind: str  # "h" (a heading within a body), "p", "li"
    text: str
    marker: str = ""  # a list item's bullet or number


class _Blocks(HTMLParser):
    """Safe HTML (from `documents.body_html`) as plain blocks of text."""

    _BLOCK = {"p", "li", "h2", "h3", "h4", "h5", "h6", "h1", "blockquote", "tr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._text: list[str] = []
        self._kind = "p"
        self._lists: list[list[int]] = []  # per open list: [is_ordered, count]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("ul", "ol"):
            self._flush()
            self._lists.append([tag == "ol", 0])
        elif tag in self._BLOCK:
            self._flush()
            self._kind = "h" if tag.startswith("h") and len(tag) == 2 else "p"
            if tag == "li" and self._lists:
                self._lists[-1][1] += 1
                self._kind = "li"
        elif tag == "br":
            self._text.append("\n")
        elif tag in ("td", "th"):
            self._text.append("  ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("ul", "ol"):
            self._flush()
            if self._lists:
                self._lists.pop()
        elif tag in self._BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split(" ")).strip()
        text = "\n".join(" ".join(line.split()) for line in text.split("\n")).strip()
        self._text = []
        if not text:
            return
        marker = ""
        if self._kind == "li" and self._lists:
            ordered, count = self._lists[-1]
            marker = f"{count}." if ordered else "\u2022"
        self.blocks.append(Block(self._kind, text, marker))
        self._kind = "p"

    def close(self) -> None:
        super().close()
        self._flush()


def blocks(body: str, format: str) -> list[Block]:
    """A section's body (Markdown or HTML) as paragraphs, list items and headings."""
    parser = _Blocks()
    parser.feed(str(body_html(body, format)))
    parser.close()
    return parser.blocks


class _Pdf:
    """An A4 page in DejaVu Sans, right to left for RTL languages."""

    def __init__(self, language: str, title: str) -> None:
        pdf = FPDF(orientation="portrait", unit="mm", format="A4")
        directory = font_dir()
        pdf.add_font(_FAMILY, "", str(directory / REGULAR))
        pdf.add_font(_FAMILY, "B", str(directory / BOLD))
        self.rtl = language_of(language).direction == "rtl" if language else False
        if language in _HARFBUZZ_SCRIPT:
            script, lang = _HARFBUZZ_SCRIPT[language]
            pdf.set_text_shaping(
                use_shaping_engine=True,
                direction="rtl" if self.rtl else "ltr",
                script=script,
                language=lang,
            )
        pdf.set_title(title)
        pdf.set_lang(language)
        pdf.set_creator("Trialdesk")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.add_page()
        self.pdf = pdf
        self.align = "R" if self.rtl else "L"

    def text(self, text: str, *, size: float = 11, bold: bool = False, indent: float = 0) -> None:
        pdf = self.pdf
        pdf.set_font(_FAMILY, "B" if bold else "", size)
        if indent:
            if self.rtl:
                pdf.set_right_margin(pdf.r_margin + indent)
            else:
                pdf.set_left_margin(pdf.l_margin + indent)
            pdf.set_x(pdf.l_margin)
        pdf.multi_cell(0, size * 0.5, text, align=self.align, new_x="LMARGIN", new_y="NEXT")
        if indent:
            if self.rtl:
                pdf.set_right_margin(pdf.r_margin - indent)
            else:
                pdf.set_left_margin(pdf.l_margin - indent)
            pdf.set_x(pdf.l_margin)

    def gap(self, mm: float = 3) -> None:
        self.pdf.ln(mm)

    def rule(self) -> None:
        pdf = self.pdf
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(2)


def render(
    document: ConsentDocument,
    signature: Signature,
    *,
    study_title: str,
    answers: Mapping[str, str],
) -> bytes:
    """The consent as signed: document, quiz answers, then the signature manifest. The
    caller speaks the signature's language (`catalogs.speaking`)."""
    text = document.texts[signature.language]
    out = _Pdf(signature.language, text.title)
    out.pdf.set_creation_date(signature.signed_at)
    out.text(study_title, size=10)
    out.text(text.title, size=16, bold=True)
    out.text(_("Version %(version)s") % {"version": document.version}, size=10)
    out.gap()
    for section in text.sections:
        out.text(section.heading, size=13, bold=True)
        for block in blocks(section.body, text.format):
            if block.kind == "h":
                out.text(block.text, bold=True)
            elif block.kind == "li":
                out.text(f"{block.marker} {block.text}", indent=5)
            else:
                out.text(block.text)
            out.gap(1.5)
        out.gap()
    if text.quiz:
        out.text(_("Questions about this information"), size=13, bold=True)
        for question in text.quiz:
            labels = {o.value: o.label for o in question.options}
            given = answers.get(question.code)
            answer = labels.get(given, given) if given else _("Not answered")
            out.text(question.question, bold=True)
            out.text(_("Your answer: %(answer)s") % {"answer": answer}, indent=5)
            out.gap(1.5)
        out.gap()
    _manifest(out, signature)
    return bytes(out.pdf.output())


def _meaning(meaning: str) -> str:
    """The signature's meaning (stored in English) in the language being rendered."""
    return _("consent to take part") if meaning == "consent to take part" else meaning


def _manifest(out: _Pdf, s: Signature) -> None:
    out.rule()
    out.text(_("Electronic signature"), size=13, bold=True)
    utc = s.signed_at.astimezone(ZoneInfo("UTC"))
    local = s.signed_at.astimezone(ZoneInfo(s.zone))
    rows = [
        (_("Printed name"), s.name),
        (_("Signed at (UTC)"), utc.strftime("%Y-%m-%d %H:%M:%S UTC")),
        (_("Signed at (study time)"), local.strftime("%Y-%m-%d %H:%M:%S ") + s.zone),
        (_("Meaning of the signature"), _meaning(s.meaning)),
        (_("Document version"), s.version),
        (_("Language"), s.language),
        (_("Document SHA-256"), s.document_sha256),
    ]
    for label, value in rows:
        out.text(f"{label}: {value}", size=10)
    if s.fda_regulated:
        out.gap()
        out.text(
            _(
                "Signature manifestation (21 CFR 11.50): this record was signed "
                "electronically by %(name)s on %(when)s; the meaning of this signature is "
                "%(meaning)s. The electronic signature is linked to this record (21 CFR "
                "11.70) by the document's SHA-256 above."
            )
            % {
                "name": s.name,
                "when": utc.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "meaning": _meaning(s.meaning),
            },
            size=9,
        )
