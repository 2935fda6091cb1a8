"""The ledger's pure rules: transitions, the on-time day, the tax flag, the inventory
file, and the definition rule that refuses paying for a timepoint only some arms have."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.demo import demo_definition
from app.incentives import rules
from app.incentives.rules import Step
from app.studies.definition import StudyDefinition
from app.studies.validation import definition_problems

NY = ZoneInfo("America/New_York")


def test_each_step_starts_only_from_its_states() -> None:
    assert rules.TRANSITIONS[Step.approve][0] == {"earned", "held"}
    assert rules.TRANSITIONS[Step.void][0] == {"held"}  # only after a review
    assert rules.TRANSITIONS[Step.issue][0] == {"approved"}
    assert "issued" not in rules.TRANSITIONS[Step.hold][0]  # paid is paid
    assert "the entry is issued" in rules.refusal(Step.approve, "issued")


def test_on_time_counts_the_last_day_of_the_grace_period() -> None:
    opens = date(2026, 3, 1)
    assert rules.on_time(opens_on=opens, done_on=date(2026, 3, 8), days=7)
    assert not rules.on_time(opens_on=opens, done_on=date(2026, 3, 9), days=7)
    # 23:30 in New York on the 8th is already the 9th in UTC: the study's day counts
    late_evening = datetime(2026, 3, 9, 3, 30, tzinfo=UTC)
    assert rules.local_day(late_evening, NY) == date(2026, 3, 8)


def test_the_tax_flag_is_raised_at_the_threshold_itself() -> None:
    assert rules.over_threshold(60000, Decimal(600))
    assert not rules.over_threshold(59999, Decimal(600))
    assert not rules.over_threshold(10**9, None)
    start, end = rules.year_bounds(2026, NY)
    assert start.astimezone(UTC) == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2027, 1, 1, 5, tzinfo=UTC)


def test_an_inventory_file_reports_each_bad_row_by_its_line() -> None:
    text = (
        "code,amount,currency\n"
        "GC-1,25,USD\n"  # 2: good
        "GC-2,25.005,USD\n"  # 3: three decimals
        "GC-3,25,usd\n"  # 4: currency
        "GC-1,5,USD\n"  # 5: twice in the file
        "\n"  # 6: blank, skipped
        "=cmd|x,5,USD\n"  # 7: a formula is no code
        "GC-4,0,USD\n"  # 8: nothing
        "GC-5,5\n"  # 9: two values
        "GC-6,5.5,USD\n"  # 10: good
    )
    read = rules.read_card_file(text)
    assert [(r.line, r.code, r.amount_cents) for r in read.rows] == [
        (2, "GC-1", 2500),
        (10, "GC-6", 550),
    ]
    assert [line for line, _ in read.rejected] == [3, 4, 5, 7, 8, 9]
    for bad in ("", "code,value\nx,1\n", "code,amount,currency\nA,1,USD\x00\n"):
        with pytest.raises(rules.InvalidCardFile):
            rules.read_card_file(bad)
    many = "code,amount,currency\n" + "".join(
        f"C{i},1,USD\n" for i in range(rules.MAX_CARD_ROWS + 1)
    )
    with pytest.raises(rules.InvalidCardFile, match="at most"):
        rules.read_card_file(many)


def test_a_definition_that_pays_for_a_timepoint_only_some_arms_have_is_refused() -> None:
    document = demo_definition()
    document["schedule"].append(
        {
            "code": "group_only",
            "anchor": "randomization",
            "day": 60,
            "open_before": 0,
            "close_after": 14,
            "instruments": ["group_experience"],  # listserv and bulletin board only
        }
    )
    shared = StudyDefinition.model_validate(document)
    assert not list(definition_problems(shared))  # the demo's own amounts are fine
    document["incentives"]["per_timepoint"]["group_only"] = 10
    paying = StudyDefinition.model_validate(document)
    problems = [(p.loc, p.msg) for p in definition_problems(paying)]
    assert problems == [
        (
            ("incentives", "per_timepoint", "group_only"),
            "only some arms answer this timepoint: paying for it would reveal the arm",
        )
    ]
