"""The words of the CONSORT diagram (pure): text cleaned for XML, measured, clipped and
wrapped (0.6 em a Latin character, 1 em an East Asian wide one), and the diagram's
numbers as sentences for screen readers and search."""

from __future__ import annotations

import re
import unicodedata

from app.reports.flow import ConsortFlow

FONT_SIZE = 13
CHAR_EM = 0.6  # average advance of a Latin character, in em
WIDE_EM = 1.0  # East Asian wide and full-width characters

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WHITESPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Text safe for XML on one line: forbidden characters (controls, lone surrogates)
    become U+FFFD and runs of whitespace one space."""
    return _WHITESPACE.sub(" ", _XML_ILLEGAL.sub("\ufffd", text)).strip()


def char_width(char: str) -> float:
    if unicodedata.combining(char) or unicodedata.category(char) == "Cf":
        return 0.0
    em = WIDE_EM if unicodedata.east_asian_width(char) in ("W", "F") else CHAR_EM
    return em * FONT_SIZE


def text_width(text: str) -> float:
    """The approximate width of the text, in pixels, at the diagram's font size."""
    return sum(char_width(c) for c in text)


def clip(text: str, width: float) -> str:
    """The text, cut and ended with "…" if it is wider than `width`."""
    if text_width(text) <= width:
        return text
    budget = width - text_width("…")
    kept: list[str] = []
    used = 0.0
    for char in text:
        used += char_width(char)
        if used > budget:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "…"


def split_word(word: str, width: float) -> tuple[str, str]:
    """The longest head of the word that fits `width` (at least one character), and the rest."""
    used = 0.0
    for i, char in enumerate(word):
        used += char_width(char)
        if used > width and i > 0:
            return word[:i], word[i:]
    return word, ""


def wrap(text: str, first: float, rest: float) -> list[str]:
    """Greedy word wrap: the first line `first` pixels wide, the others `rest`; words wider
    than a line are broken."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if text_width(candidate) <= (rest if lines else first):
            current = candidate
            continue
        if current:
            lines.append(current)
        while text_width(word) > (rest if lines else first):
            head, word = split_word(word, rest if lines else first)
            lines.append(head)
        current = word
    if current or not lines:
        lines.append(current)
    return lines


def description(flow: ConsortFlow) -> str:
    """The numbers of the diagram as sentences, for screen readers and search."""
    reasons = "".join(
        f"; {clean(reason)}: {count}" for reason, count in flow.ineligible_by_reason.items()
    )
    assessed = f"Assessed for eligibility: {flow.screened}"
    online = ""
    if flow.online:
        assessed += f", of whom {flow.self_screened} screened themselves online"
        online = (
            f"; did not finish online consent: {flow.consent_not_finished}"
            f"; signed online, awaiting review: {flow.awaiting_review}"
        )
    parts = [
        f"{assessed}.",
        f"Excluded: {flow.excluded} (not meeting inclusion criteria: {flow.ineligible}"
        f"{reasons}{online}; withdrew before randomization: "
        f"{flow.withdrawn_before_randomization}).",
        f"Awaiting randomization: {flow.awaiting_randomization}.",
        f"Randomized: {flow.randomized}.",
    ]
    for group in flow.groups:
        sentence = (
            f"{clean(group.label) or clean(group.code)}: allocated {group.randomized}, "
            f"discontinued intervention {group.discontinued_intervention}, lost to "
            f"follow-up {group.lost_to_follow_up}, withdrew "
            f"{group.withdrew + group.withdrew_data} (consent to use of data "
            f"{group.withdrew_data}), died {group.died}"
        )
        for tp in group.timepoints:
            sentence += (
                f"; {clean(tp.label) or clean(tp.timepoint)}: completed {tp.completed}, "
                f"missed {tp.missed}, pending {tp.pending}"
            )
        parts.append(sentence + ".")
    return " ".join(parts)
