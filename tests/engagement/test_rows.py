"""What a row of an engagement file must hold (pure: no database)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from app.engagement import rows
from app.engagement.rows import Row, RowProblem
from app.engagement.usage import Summary, group_usage, quartiles

NOW = datetime(2026, 12, 8, 12, tzinfo=UTC)
GOOD = {"event_id": "e1", "participant": "PHL-0001", "at": "2026-12-01T09:30:00-05:00"}


def event(**fields: object) -> rows.Event:
    return rows.event_of(Row(1, {**GOOD, "kind": "post", **fields}), now=NOW)


def test_a_good_row_is_read_in_utc_with_count_1_by_default():
    got = event()
    assert got.at == datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
    assert (got.kind, got.count, got.participant) == ("post", 1, "PHL-0001")
    assert event(count="12").count == 12 and event(count=7, event_id=42).event_id == "42"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"at": "2026-12-01T09:30:00"}, "no UTC offset"),
        ({"at": "yesterday"}, "not an ISO 8601"),
        ({"at": "2027-06-01T00:00:00Z"}, "in the future"),
        ({"at": "1999-12-31T23:00:00Z"}, "before 2000"),
        ({"at": 1733000000}, "at must be text"),
        ({"kind": "Post"}, "lower-case code"),
        ({"kind": "k" * 33}, "longer than 32"),
        ({"kind": "post;drop"}, "lower-case code"),
        ({"count": 0}, "from 1 to 100,000"),
        ({"count": "100001"}, "from 1 to 100,000"),
        ({"count": "9" * 400}, "from 1 to 100,000"),
        ({"count": 2.5}, "whole number"),
        ({"count": True}, "whole number"),
        ({"count": "-3"}, "whole number"),
        ({"participant": None}, "participant is missing"),
        ({"event_id": " "}, "event_id is missing"),
        ({"event_id": "x" * 129}, "longer than 128"),
        ({"event_id": "a\x00b"}, "control characters"),
        ({"participant": "P\ud800"}, "invalid Unicode"),
        ({"participant": ["PHL-0001"]}, "participant must be text"),
    ],
)
def test_a_row_at_fault_is_refused_saying_which_field(fields, problem):
    with pytest.raises(RowProblem, match=problem):
        event(**fields)


def test_lines_are_read_with_a_bound_and_a_long_one_is_skipped_whole():
    text = b"a\r\n" + b"x" * (rows.MAX_LINE_BYTES * 50) + b"\nb\n\nc"
    assert list(rows.lines(io.BytesIO(text))) == [
        (1, b"a"),
        (2, None),
        (3, b"b"),
        (4, b""),
        (5, b"c"),
    ]


def test_json_lines_and_csv_lines_at_fault():
    for text, problem in [
        ("[1, 2]", "not a JSON object"),
        ("{", "not valid JSON"),
        ("[" * 3000 + "]" * 3000, "nests too deep|not valid JSON"),
    ]:
        with pytest.raises(RowProblem, match=problem):
            rows.json_row(1, text)
    with pytest.raises(RowProblem, match="missing: event_id, participant, at, kind"):
        rows.csv_header("e1,PHL-0001,2026-12-01T00:00:00Z,post")  # a row, not a header
    header = rows.csv_header("Event_ID,participant,at,kind")
    with pytest.raises(RowProblem, match="has 3 fields"):
        rows.csv_row(2, "a,b,c", header)
    with pytest.raises(RowProblem, match="not UTF-8"):
        rows.decode(b"\xff\xfe")


def test_quartiles_interpolate_and_everyone_randomized_counts():
    assert quartiles([0, 1, 3]) == (1, 0.5, 2)
    assert quartiles([5]) == (5, 5, 5) and quartiles([]) is None
    used = Summary(1, "a", "x", NOW, active_weeks=3, last_use=NOW, first_use=NOW)
    used.by_kind = {"post": 2, "reply": 1, "login": 4}
    figures = group_usage([used, Summary(2, "b", "x", NOW)], now=NOW)
    assert (figures.randomized, figures.any_use, figures.used_last_month) == (2, 1, 1)
    assert figures.posts == (1.5, 0.75, 2.25) and figures.used_last_month_percent == 50.0
