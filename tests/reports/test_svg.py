"""The CONSORT diagram as SVG: a well-formed document whose texts carry the exact numbers,
whatever the labels, the number of groups, timepoints or reasons."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from app.reports.flow import ConsortFlow, GroupFlow, TimepointFlow
from app.reports.svg import consort_svg

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script> & "x"'


def timepoints(*completed: int) -> list[TimepointFlow]:
    return [
        TimepointFlow(f"m{2 * i}", f"Month {2 * i}", done, missed=4 - done, pending=0)
        for i, done in enumerate(completed, start=1)
    ]


def group(code: str, label: str, *completed: int, withdrawn: int = 0) -> GroupFlow:
    return GroupFlow(
        code,
        label,
        randomized=4,
        withdrawn=withdrawn,
        timepoints=timepoints(*completed),
        withdrew=withdrawn,
    )


FLOW = ConsortFlow(
    study_title="Peer support online",
    screened=20,
    ineligible=4,
    ineligible_by_reason={"Under 18": 3, "No internet access": 1},
    enrolled=16,
    withdrawn_before_randomization=1,
    awaiting_randomization=3,
    randomized=12,
    groups=[
        group("G1", "Listserv", 4, 3, withdrawn=1),
        group("G2", "Bulletin board", 4, 2),
        group("G3", "Control", 3, 1),
    ],
)


def parse(flow: ConsortFlow) -> ET.Element:
    return ET.fromstring(consort_svg(flow))


def text_of(element: ET.Element) -> str:
    """A <text> as read: its wrapped lines (<tspan>s) joined by spaces."""
    spans = element.findall(f"{SVG}tspan")
    if spans:
        return " ".join(span.text or "" for span in spans)
    return element.text or ""


def texts(root: ET.Element) -> list[str]:
    return [text_of(t) for t in root.iter(f"{SVG}text")]


def the_text(root: ET.Element, start: str) -> str:
    """The one text that starts with `start`."""
    found = [t for t in texts(root) if t.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


def text_lines(root: ET.Element) -> list[tuple[str, float, float, float]]:
    """Each drawn line: its text, its estimated left and right ends (0.6 em a character,
    the diagram's own rule for Latin text), and its baseline."""
    advance = 0.6 * float(root.attrib["font-size"])
    out = []
    for text in root.iter(f"{SVG}text"):
        anchor = text.attrib.get("text-anchor", "start")
        for element in text.findall(f"{SVG}tspan") or [text]:
            line, x, y = element.text or "", float(element.attrib["x"]), float(element.attrib["y"])
            width = advance * len(line)
            left = x - width / 2 if anchor == "middle" else x
            out.append((line, left, left + width, y))
    return out


def view_box(root: ET.Element) -> tuple[float, float, float, float]:
    x, y, width, height = (float(v) for v in root.attrib["viewBox"].split())
    return x, y, width, height


def test_the_document_is_an_accessible_svg_titled_after_the_study():
    root = parse(FLOW)

    assert root.tag == f"{SVG}svg"
    assert view_box(root)[2:] == (float(root.attrib["width"]), float(root.attrib["height"]))
    assert root.attrib["role"] == "img"
    title, desc = (root.find(f".//*[@id='{i}']") for i in root.attrib["aria-labelledby"].split())
    assert title is not None and title.tag == f"{SVG}title"
    assert title.text == "CONSORT flow diagram: Peer support online"
    assert desc is not None and desc.tag == f"{SVG}desc"
    assert "Assessed for eligibility: 20." in (desc.text or "")
    assert "Randomized: 12." in (desc.text or "")


def test_enrollment_shows_the_exact_numbers_of_screening():
    root = parse(FLOW)

    assert the_text(root, "Assessed for eligibility") == "Assessed for eligibility (n=20)"
    assert the_text(root, "Excluded") == "Excluded (n=5)"  # 4 ineligible + 1 withdrawn
    assert the_text(root, "Not meeting") == "Not meeting inclusion criteria (n=4)"
    assert the_text(root, "• Under 18") == "• Under 18 (n=3)"
    assert the_text(root, "• No internet") == "• No internet access (n=1)"
    assert the_text(root, "Withdrew before") == "Withdrew before randomization (n=1)"
    assert the_text(root, "Awaiting") == "Awaiting randomization (n=3)"
    assert the_text(root, "Randomized") == "Randomized (n=12)"


def test_each_group_has_its_allocation_follow_up_and_analysis_in_its_own_column():
    root = parse(FLOW)
    allocated = [t for t in root.iter(f"{SVG}text") if text_of(t).startswith("Allocated to")]

    assert [text_of(t) for t in allocated] == [
        "Allocated to Listserv (n=4)",
        "Allocated to Bulletin board (n=4)",
        "Allocated to Control (n=4)",
    ]
    xs = [float(t.attrib["x"]) for t in allocated]
    assert xs == sorted(xs) and len(set(xs)) == 3
    randomized = next(t for t in root.iter(f"{SVG}text") if text_of(t).startswith("Randomized"))
    assert all(float(t.attrib["y"]) > float(randomized.attrib["y"]) for t in allocated)

    all_texts = texts(root)
    assert all_texts.count("Month 2: completed n=4, missed n=0, pending n=0") == 2
    assert all_texts.count("Month 2: completed n=3, missed n=1, pending n=0") == 1
    assert all_texts.count("Month 4: completed n=1, missed n=3, pending n=0") == 1
    assert all_texts.count("Withdrew (n=1)") == 1
    assert all_texts.count("Withdrew (n=0)") == 2
    analysed = [t for t in all_texts if t.startswith("Analysed")]
    assert analysed == [
        "Analysed at Month 4 (n=3)",
        "Analysed at Month 4 (n=2)",
        "Analysed at Month 4 (n=1)",
    ]


def test_hostile_labels_are_escaped_text_and_never_markup():
    flow = dataclasses.replace(
        FLOW,
        study_title=HOSTILE,
        ineligible_by_reason={HOSTILE: 4},
        groups=[group("G1", HOSTILE, 2), group("G2", "Ünïcødé ✓ 漢字 \u202eevil", 1)],
    )
    svg = consort_svg(flow)
    root = ET.fromstring(svg)

    assert "<script" not in svg
    assert not [e for e in root.iter() if e.tag.endswith(("script", "foreignObject"))]
    assert the_text(root, "Allocated to <script>") == f"Allocated to {HOSTILE} (n=4)"
    assert the_text(root, "• <script>") == f"• {HOSTILE} (n=4)"
    assert the_text(root, "Allocated to Ünïcødé") == "Allocated to Ünïcødé ✓ 漢字 \u202eevil (n=4)"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == f"CONSORT flow diagram: {HOSTILE}"


def test_characters_xml_forbids_are_replaced_so_the_document_still_parses():
    flow = dataclasses.replace(FLOW, groups=[group("G1", "bell\x07 nul\x00 half\ud800", 1)])

    root = parse(flow)

    assert the_text(root, "Allocated to") == "Allocated to bell\ufffd nul\ufffd half\ufffd (n=4)"


def test_a_very_long_label_is_clipped_but_keeps_its_number():
    flow = dataclasses.replace(FLOW, groups=[group("G1", "word " * 200, 1)])

    allocated = the_text(parse(flow), "Allocated to")

    assert allocated.endswith("… (n=4)")
    assert len(allocated) < 120


def test_eight_groups_ten_timepoints_and_thirty_reasons_stay_inside_the_picture():
    reasons = {f"Reason {i}: " + "long words " * (i % 9): i for i in range(30)}
    groups = [
        group(f"G{i}", f"Arm {i} " + "with a long name " * i, *range(10), withdrawn=i)
        for i in range(8)
    ]
    flow = dataclasses.replace(FLOW, ineligible_by_reason=reasons, groups=groups)

    root = parse(flow)
    _, _, width, height = view_box(root)

    assert width > view_box(parse(FLOW))[2]  # wider with more groups
    all_texts = texts(root)
    assert len([t for t in all_texts if t.startswith("• Reason")]) == 30
    assert "• Reason 29: long words long words (n=29)" in all_texts
    assert len([t for t in all_texts if t.startswith("Month 20: completed")]) == 8
    assert len([t for t in all_texts if t.startswith("Allocated to Arm")]) == 8
    positioned = [*root.iter(f"{SVG}text"), *root.iter(f"{SVG}tspan")]
    for element in positioned:
        assert 0 <= float(element.attrib["x"]) <= width
        assert 0 <= float(element.attrib["y"]) <= height
    boxes = [
        (
            float(r.attrib["x"]),
            float(r.attrib["y"]),
            float(r.attrib["width"]),
            float(r.attrib["height"]),
        )
        for r in root.iter(f"{SVG}rect")
    ][1:]  # after the white background
    for x, y, w, h in boxes:
        assert 0 <= x <= x + w <= width
        assert 0 <= y <= y + h <= height
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for bx, by, bw, bh in boxes[i + 1 :]:
            overlap = ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
            assert not overlap, ((ax, ay, aw, ah), (bx, by, bw, bh))
    for line, left, right, y in text_lines(root):
        assert any(x <= left and right <= x + w and y0 < y < y0 + h for x, y0, w, h in boxes), (
            line,
            left,
            right,
            y,
        )


def test_no_participants_at_all_still_draws_the_diagram():
    flow = ConsortFlow(
        study_title="",
        screened=0,
        ineligible=0,
        ineligible_by_reason={},
        enrolled=0,
        withdrawn_before_randomization=0,
        awaiting_randomization=0,
        randomized=0,
        groups=[GroupFlow("G1", "Only arm", 0, 0, [])],
    )

    root = parse(flow)
    all_texts = texts(root)

    assert the_text(root, "Assessed for eligibility") == "Assessed for eligibility (n=0)"
    assert the_text(root, "Excluded") == "Excluded (n=0)"
    assert the_text(root, "Randomized") == "Randomized (n=0)"
    assert the_text(root, "Allocated to") == "Allocated to Only arm (n=0)"
    assert "No follow-up timepoints" in all_texts
    assert not [t for t in all_texts if t.startswith(("Awaiting", "Analysed", "•"))]


def test_without_groups_the_diagram_stops_at_randomization():
    root = parse(dataclasses.replace(FLOW, groups=[], randomized=0))

    all_texts = texts(root)

    assert the_text(root, "Randomized") == "Randomized (n=0)"
    assert not [t for t in all_texts if t.startswith(("Allocated", "Withdrew (", "Analysed"))]
    assert "Allocation" not in all_texts and "Enrollment" in all_texts


def test_arrows_use_the_documents_own_marker_and_nothing_is_referenced_from_outside():
    svg = consort_svg(FLOW)
    root = ET.fromstring(svg)

    marker_ids = {m.attrib["id"] for m in root.iter(f"{SVG}marker")}
    arrows = [e.attrib["marker-end"] for e in root.iter() if "marker-end" in e.attrib]
    assert len(arrows) >= 3 + 3 + 3 + 3  # enrollment, allocation, follow-up, analysis
    assert {a.removeprefix("url(#").removesuffix(")") for a in arrows} == marker_ids
    assert "href" not in svg and "http://" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_each_group_counts_leaving_by_kind_as_consort_does():
    leaving = GroupFlow(
        "G1",
        "Listserv",
        randomized=9,
        withdrawn=6,
        timepoints=timepoints(4),
        discontinued_intervention=2,
        lost_to_follow_up=1,
        withdrew=1,
        withdrew_data=2,
        died=2,
    )
    root = parse(dataclasses.replace(FLOW, groups=[leaving]))
    shown = texts(root)
    assert "Discontinued intervention, still followed (n=2)" in shown
    assert "Lost to follow-up (n=1)" in shown
    assert "Withdrew (n=3)" in shown  # from follow-up, and from the use of their data
    assert "Withdrew consent to use of data (n=2)" in shown
    assert "Died (n=2)" in shown
    described = root.find(f"{SVG}desc")
    assert described is not None and described.text is not None
    assert "discontinued intervention 2, lost to follow-up 1, withdrew 3" in described.text
