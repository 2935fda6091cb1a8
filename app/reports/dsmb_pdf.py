"""The DSMB report as a PDF (fpdf2: pure Python, no system library).

Written with the PDF core font Helvetica, which covers Latin-1 only: no font file is
embedded, so the file is small and the same on every machine. The report's text is its
own labels, the study's title and site names, and MedDRA organ classes: characters
outside Latin-1 are written as their nearest ASCII (dashes, quotes, `>=`) or as `?`
(`latin1`), never dropped silently.
"""

from __future__ import annotations

import unicodedata

from fpdf import FPDF
from fpdf.fonts import FontFace

from app.reports.dsmb import DsmbReport, Part, Table, cells

_REPLACEMENTS = str.maketrans(
    {
        "\u2014": "-",
        "\u2013": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u2265": ">=",
        "\u2264": "<=",
        "\u2192": "->",
        "\u00a0": " ",
    }
)


def latin1(text: str) -> str:
    """The text in Latin-1: known signs as ASCII, accents kept where Latin-1 has them,
    stripped where it does not, anything else as `?`."""
    text = text.translate(_REPLACEMENTS)
    out = []
    for char in text:
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode()
            out.append(base or "?")
    return "".join(out)


def _title(report: DsmbReport) -> str:
    part = "Open part" if report.part is Part.open else "Closed part"
    return f"DSMB report - {part}"


def render(report: DsmbReport) -> bytes:
    """The report as a PDF document (A4, portrait)."""
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_title(latin1(f"{_title(report)}: {report.study_title}"))
    pdf.set_creator("Trialdesk")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, latin1(_title(report)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, latin1(report.study_title), new_x="LMARGIN", new_y="NEXT")
    lines = [
        f"Generated on {report.generated_on.isoformat()} ({report.time_zone})",
        f"Study activated on {report.activated_on.isoformat() if report.activated_on else '-'}",
    ]
    if report.locked_on:
        lines.append(f"Study locked on {report.locked_on.isoformat()}")
    if report.part is Part.closed:
        lines.append("CONFIDENTIAL: for the closed session of the DSMB only.")
    else:
        lines.append("Pooled counts: no split by group.")
    pdf.set_font("Helvetica", "", 9)
    for line in lines:
        pdf.cell(0, 5, latin1(line), new_x="LMARGIN", new_y="NEXT")
    for section in report.sections:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 8, latin1(section.title), new_x="LMARGIN", new_y="NEXT")
        for table in section.tables:
            _table(pdf, table)
    if report.key:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 8, "Appendix: key to the groups", new_x="LMARGIN", new_y="NEXT")
        _grid(pdf, [["Group", "Arm"], *([k.letter, k.label] for k in report.key)], numbers=False)
    return bytes(pdf.output())


def _table(pdf: FPDF, table: Table) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.multi_cell(0, 6, latin1(table.title), new_x="LMARGIN", new_y="NEXT")
    if not table.rows:
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(0, 5, "None.", new_x="LMARGIN", new_y="NEXT")
    else:
        _grid(pdf, list(cells(table)), numbers=True)
    if table.note:
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4, latin1(table.note), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _grid(pdf: FPDF, rows: list[list[str]], *, numbers: bool) -> None:
    """Rows of text as a table: the first as headings, the first column wider, the
    others (counts, when `numbers`) aligned right."""
    pdf.set_font("Helvetica", "", 8)
    count = len(rows[0])
    first = 70 if count > 2 else 30
    rest = (pdf.epw - first) / max(count - 1, 1)
    widths = (first, *([rest] * (count - 1)))
    align = ("LEFT", *(["RIGHT" if numbers else "LEFT"] * (count - 1)))
    with pdf.table(
        col_widths=widths,
        text_align=align,
        first_row_as_headings=True,
        headings_style=FontFace(emphasis="BOLD"),
        line_height=4.5,
        width=pdf.epw,
    ) as grid:
        for values in rows:
            row = grid.row()
            for value in values:
                row.cell(latin1(value))
