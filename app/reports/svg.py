"""A trial's CONSORT flow diagram as a standalone SVG document (pure).

The layout follows the CONSORT 2010 flow diagram template, top to bottom::

    Enrollment   [Assessed for eligibility (n=)]
                 [of whom online (n=)]             (online lines: sign-ups taken online)
                          |----------------------> [Excluded (n=)               ]
                          |                        [  Not meeting inclusion (n=)]
                          |                        [    • <reason> (n=)         ]
                          |                        [  Did not finish consent (n=)] (online)
                          |                        [  Awaiting review (n=)      ] (online)
                          |                        [  Withdrew before rand. (n=)]
                          |----------------------> [Awaiting randomization (n=) ]  (if any)
                          v
                 [Randomized (n=)]
                          |
                  +-------+-------+                one column per group
                  v               v
    Allocation   [Allocated to A]  [Allocated to B]
    Follow-up    [<timepoint>: completed n=, missed n=, pending n= ...
                  Discontinued intervention (n=), Lost to follow-up (n=),
                  Withdrew (n=) (of whom consent to use of data (n=)), Died (n=)]
    Analysis     [Analysed at <last timepoint> (n=completed there)]   (if any timepoints)

"Excluded" counts everyone assessed who left before randomization (not meeting the
inclusion criteria, online sign-ups not (yet) enrolled, or withdrawn), so that
assessed = excluded + awaiting + randomized.
People still awaiting randomization are not excluded: they get their own box, drawn
only while there are some (a finished trial has none).

Section names sit in a gutter on the left, beside their rows, so no connector crosses
them. Text is measured approximately (0.6 em a character, 1 em for East Asian wide
characters): long labels are wrapped to the width of their box and clipped with "…"
past two lines, and every box grows with its lines, so any number of groups, timepoints
or reasons stays inside its box. Each entry is one ``<text>`` (wrapped lines are
``<tspan>`` with absolute coordinates), so the numbers can be selected and searched.
Every piece of input text is cleaned of characters XML forbids and escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from app.reports.flow import ConsortFlow, GroupFlow, TimepointFlow
from app.reports.svg_text import FONT_SIZE, description
from app.reports.svg_text import clean as _clean
from app.reports.svg_text import clip as _clip
from app.reports.svg_text import text_width as _text_width
from app.reports.svg_text import wrap as _wrap

__all__ = ["consort_svg", "description"]

SVG_NS = "http://www.w3.org/2000/svg"
FONT_FAMILY = "Arial, Helvetica, sans-serif"
LINE_HEIGHT = 18
BASELINE = (LINE_HEIGHT + 0.7 * FONT_SIZE) / 2  # from a line's top to its baseline
PAD_X = 10
PAD_Y = 8
INDENT = 14  # per nesting level inside a list box
BULLET = "• "
LABEL_LINES = 2  # labels are clipped with "…" past this many lines of their box

MARGIN = 20
GUTTER_WIDTH = 104  # section names
GUTTER_GAP = 24
MAIN_WIDTH = 280  # "Assessed for eligibility" and "Randomized"
SIDE_WIDTH = 360  # excluded / awaiting, right of the trunk
SIDE_GAP = 40  # between the main boxes and the side boxes
COLUMN_WIDTH = 240  # one group
COLUMN_GAP = 24
ROW_GAP = 36
SIDE_ROW_GAP = 14

ARROW_ID = "consort-arrow"
TITLE_ID = "consort-title"
DESC_ID = "consort-desc"


@dataclass(frozen=True)
class _Item:
    """An entry of a box before wrapping: text, nesting level, whether it is a bullet, and
    whether its continuation lines are indented (so that entries stand apart)."""

    text: str
    level: int = 0
    bullet: bool = False
    hang: bool = False


@dataclass(frozen=True)
class _Entry:
    """An entry wrapped to its box: its lines, the offset of the first line from the text
    margin, and the further offset of the continuation lines (under the bullet's text)."""

    lines: tuple[str, ...]
    indent: float
    hanging: float


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    width: float
    entries: tuple[_Entry, ...]
    centered: bool

    @property
    def line_count(self) -> int:
        return sum(len(e.lines) for e in self.entries)

    @property
    def height(self) -> float:
        return 2 * PAD_Y + self.line_count * LINE_HEIGHT

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def center_x(self) -> float:
        return self.x + self.width / 2

    @property
    def middle_y(self) -> float:
        return self.y + self.height / 2


@dataclass(frozen=True)
class _Connector:
    """A polyline, with an arrowhead at its end or not."""

    points: tuple[tuple[float, float], ...]
    arrow: bool


@dataclass(frozen=True)
class _Section:
    """A section name in the left gutter, beside the rows from top to bottom."""

    name: str
    top: float
    bottom: float


@dataclass(frozen=True)
class _Diagram:
    width: float
    height: float
    boxes: tuple[_Box, ...]
    connectors: tuple[_Connector, ...]
    sections: tuple[_Section, ...]


# Text: cleaning, measuring, clipping, wrapping


def _line_width(box_width: float, level: int = 0, *, bullet: bool = False) -> float:
    """The width available to the text of an entry of a box, in pixels."""
    hanging = _text_width(BULLET) if bullet else 0.0
    return box_width - 2 * PAD_X - level * INDENT - hanging


def _label(text: str, line_width: float, lines: int = LABEL_LINES) -> str:
    """A label from the input, cleaned and clipped with "…" to `lines` lines' width."""
    return _clip(_clean(text), lines * line_width)


# Boxes


def _entry(item: _Item, box_width: float) -> _Entry:
    indent = item.level * INDENT
    if item.bullet:
        hanging = _text_width(BULLET)
        width = _line_width(box_width, item.level, bullet=True)
        lines = _wrap(item.text, width, width)
        lines[0] = BULLET + lines[0]
    else:
        hanging = INDENT if item.hang else 0.0
        width = _line_width(box_width, item.level)
        lines = _wrap(item.text, width, width - hanging)
    return _Entry(tuple(lines), indent, hanging)


def _box(x: float, y: float, width: float, items: Iterable[_Item], *, centered: bool) -> _Box:
    entries = tuple(_entry(item, width) for item in items)
    return _Box(x, y, width, entries, centered)


def _assessed_items(flow: ConsortFlow) -> list[_Item]:
    items = [_Item(f"Assessed for eligibility (n={flow.screened})")]
    if flow.online:
        items.append(_Item(f"of whom screened online (n={flow.self_screened})"))
    return items


def _excluded_items(flow: ConsortFlow) -> list[_Item]:
    items = [
        _Item(f"Excluded (n={flow.excluded})"),
        _Item(f"Not meeting inclusion criteria (n={flow.ineligible})", level=1),
    ]
    for reason, count in flow.ineligible_by_reason.items():
        text = _label(reason, _line_width(SIDE_WIDTH, 2, bullet=True))
        items.append(_Item(f"{text} (n={count})", level=2, bullet=True))
    if flow.online:
        items.append(
            _Item(f"Did not finish online consent (n={flow.consent_not_finished})", level=1)
        )
        items.append(_Item(f"Signed online, awaiting review (n={flow.awaiting_review})", level=1))
    withdrew = flow.withdrawn_before_randomization
    items.append(_Item(f"Withdrew before randomization (n={withdrew})", level=1))
    return items


def _group_name(group: GroupFlow) -> str:
    width = _line_width(COLUMN_WIDTH)
    return _label(group.label, width) or _label(group.code, width) or "?"


def _timepoint_name(tp: TimepointFlow) -> str:
    width = _line_width(COLUMN_WIDTH)
    return _label(tp.label, width, lines=1) or _label(tp.timepoint, width, lines=1) or "?"


def _follow_up_items(group: GroupFlow) -> list[_Item]:
    items = []
    for tp in group.timepoints:
        name = _timepoint_name(tp)
        counts = f"completed n={tp.completed}, missed n={tp.missed}, pending n={tp.pending}"
        items.append(_Item(f"{name}: {counts}", hang=True))
    if not group.timepoints:
        items.append(_Item("No follow-up timepoints"))
    items += [
        _Item(f"Discontinued intervention, still followed (n={group.discontinued_intervention})"),
        _Item(f"Lost to follow-up (n={group.lost_to_follow_up})"),
        _Item(f"Withdrew (n={group.withdrew + group.withdrew_data})"),
        _Item(f"Withdrew consent to use of data (n={group.withdrew_data})", level=1),
        _Item(f"Died (n={group.died})"),
    ]
    return items


def _analysis_item(group: GroupFlow) -> _Item:
    if not group.timepoints:
        return _Item("No timepoint to analyse")
    last = group.timepoints[-1]
    return _Item(f"Analysed at {_timepoint_name(last)} (n={last.completed})")


def _row(
    xs: Sequence[float], y: float, items: Sequence[Sequence[_Item]], *, centered: bool
) -> list[_Box]:
    return [
        _box(x, y, COLUMN_WIDTH, its, centered=centered) for x, its in zip(xs, items, strict=True)
    ]


def _row_bottom(row: Sequence[_Box]) -> float:
    return max(box.bottom for box in row)


# Connectors


def _arrow(*points: tuple[float, float]) -> _Connector:
    return _Connector(points, arrow=True)


def _line(*points: tuple[float, float]) -> _Connector:
    return _Connector(points, arrow=False)


def _split(source: _Box, targets: Sequence[_Box]) -> list[_Connector]:
    """From the bottom of `source`, down to a horizontal line, then an arrow to each target."""
    top = min(t.y for t in targets)
    if len(targets) == 1 and targets[0].center_x == source.center_x:
        return [_arrow((source.center_x, source.bottom), (source.center_x, top))]
    bar_y = (source.bottom + top) / 2
    left = min(t.center_x for t in targets)
    right = max(t.center_x for t in targets)
    connectors = [
        _line((source.center_x, source.bottom), (source.center_x, bar_y)),
        _line((left, bar_y), (right, bar_y)),
    ]
    connectors += [_arrow((t.center_x, bar_y), (t.center_x, t.y)) for t in targets]
    return connectors


def _down(upper: Sequence[_Box], lower: Sequence[_Box]) -> list[_Connector]:
    return [
        _arrow((u.center_x, u.bottom), (u.center_x, v.y)) for u, v in zip(upper, lower, strict=True)
    ]


# Layout


def _layout(flow: ConsortFlow) -> _Diagram:
    groups = flow.groups
    count = len(groups)
    groups_width = count * COLUMN_WIDTH + max(count - 1, 0) * COLUMN_GAP
    half = max(groups_width, MAIN_WIDTH) / 2
    trunk_x = MARGIN + GUTTER_WIDTH + GUTTER_GAP + half
    column_xs = [trunk_x - groups_width / 2 + i * (COLUMN_WIDTH + COLUMN_GAP) for i in range(count)]
    main_x = trunk_x - MAIN_WIDTH / 2
    side_x = trunk_x + MAIN_WIDTH / 2 + SIDE_GAP

    assessed = _box(
        main_x,
        MARGIN,
        MAIN_WIDTH,
        _assessed_items(flow),
        centered=True,
    )
    sides = [
        _box(side_x, assessed.bottom + ROW_GAP, SIDE_WIDTH, _excluded_items(flow), centered=False)
    ]
    if flow.awaiting_randomization:
        awaiting = _Item(f"Awaiting randomization (n={flow.awaiting_randomization})")
        sides.append(
            _box(side_x, sides[-1].bottom + SIDE_ROW_GAP, SIDE_WIDTH, [awaiting], centered=False)
        )
    randomized = _box(
        main_x,
        sides[-1].bottom + ROW_GAP,
        MAIN_WIDTH,
        [_Item(f"Randomized (n={flow.randomized})")],
        centered=True,
    )
    boxes = [assessed, *sides, randomized]
    connectors = [_arrow((trunk_x, assessed.bottom), (trunk_x, randomized.y))]
    connectors += [_arrow((trunk_x, side.middle_y), (side.x, side.middle_y)) for side in sides]
    sections = [_Section("Enrollment", assessed.y, randomized.bottom)]
    bottom = randomized.bottom

    if groups:
        allocation_items = [
            [_Item(f"Allocated to {_group_name(g)} (n={g.randomized})")] for g in groups
        ]
        allocated = _row(column_xs, randomized.bottom + ROW_GAP, allocation_items, centered=True)
        follow_up = _row(
            column_xs,
            _row_bottom(allocated) + ROW_GAP,
            [_follow_up_items(g) for g in groups],
            centered=False,
        )
        boxes += allocated + follow_up
        connectors += _split(randomized, allocated) + _down(allocated, follow_up)
        sections.append(_Section("Allocation", allocated[0].y, _row_bottom(allocated)))
        sections.append(_Section("Follow-up", follow_up[0].y, _row_bottom(follow_up)))
        bottom = _row_bottom(follow_up)
        if any(g.timepoints for g in groups):
            analysis_items = [[_analysis_item(g)] for g in groups]
            analysed = _row(column_xs, bottom + ROW_GAP, analysis_items, centered=True)
            boxes += analysed
            connectors += _down(follow_up, analysed)
            sections.append(_Section("Analysis", analysed[0].y, _row_bottom(analysed)))
            bottom = _row_bottom(analysed)

    right = max(trunk_x + half, side_x + SIDE_WIDTH)
    return _Diagram(
        width=math.ceil(right + MARGIN),
        height=math.ceil(bottom + MARGIN),
        boxes=tuple(boxes),
        connectors=tuple(connectors),
        sections=tuple(sections),
    )


# Rendering


def _num(value: float) -> str:
    """A coordinate with at most one decimal: 12, 12.5."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text_element(lines: Sequence[tuple[float, float, str]], anchor: str) -> str:
    """One <text>; several lines become <tspan>s with absolute positions."""
    x, y, first = lines[0]
    attrs = f'x="{_num(x)}" y="{_num(y)}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if len(lines) == 1:
        return f"<text {attrs}>{escape(first)}</text>"
    spans = "".join(
        f'<tspan x="{_num(lx)}" y="{_num(ly)}">{escape(text)}</tspan>' for lx, ly, text in lines
    )
    return f"<text {attrs}>{spans}</text>"


def _box_svg(box: _Box) -> list[str]:
    out = [
        f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.width)}" '
        f'height="{_num(box.height)}" fill="white" stroke="black"/>'
    ]
    line_top = box.y + PAD_Y
    for entry in box.entries:
        placed = []
        for i, text in enumerate(entry.lines):
            if box.centered:
                x = box.center_x
            else:
                x = box.x + PAD_X + entry.indent + (entry.hanging if i else 0.0)
            placed.append((x, line_top + BASELINE, text))
            line_top += LINE_HEIGHT
        out.append(_text_element(placed, "middle" if box.centered else "start"))
    return out


def _connector_svg(connector: _Connector) -> str:
    points = " ".join(f"{_num(x)},{_num(y)}" for x, y in connector.points)
    marker = f' marker-end="url(#{ARROW_ID})"' if connector.arrow else ""
    return f'<polyline points="{points}" fill="none" stroke="black"{marker}/>'


def _section_svg(section: _Section) -> list[str]:
    height = section.bottom - section.top
    middle = section.top + height / 2
    return [
        f'<rect x="{MARGIN}" y="{_num(section.top)}" width="{GUTTER_WIDTH}" '
        f'height="{_num(height)}" rx="8" fill="white" stroke="black"/>',
        f'<text x="{_num(MARGIN + GUTTER_WIDTH / 2)}" y="{_num(middle + 0.35 * FONT_SIZE)}" '
        f'text-anchor="middle" font-weight="bold">{escape(section.name)}</text>',
    ]


def _defs() -> str:
    return (
        f'<defs><marker id="{ARROW_ID}" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="black"/></marker></defs>'
    )


def consort_svg(flow: ConsortFlow) -> str:
    """The trial's CONSORT flow diagram as a complete, standalone SVG document."""
    diagram = _layout(flow)
    width, height = _num(diagram.width), _num(diagram.height)
    title = f"CONSORT flow diagram: {_clean(flow.study_title)}"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="{TITLE_ID} {DESC_ID}" '
        f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}">',
        f'<title id="{TITLE_ID}">{escape(title)}</title>',
        f'<desc id="{DESC_ID}">{escape(description(flow))}</desc>',
        _defs(),
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
    ]
    for section in diagram.sections:
        out += _section_svg(section)
    out += [_connector_svg(c) for c in diagram.connectors]
    for box in diagram.boxes:
        out += _box_svg(box)
    out.append("</svg>")
    return "\n".join(out) + "\n"
