"""Reporting deadlines (pure): which apply, when the clock starts, when each is due, in
the study's time zone (America/New_York, as the demo study)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.safety.deadlines import Stamped, add_working_days, clock_start, compute
from app.safety.events import Version, VersionKind
from app.studies.definition import Deadline

NY = ZoneInfo("America/New_York")
IRB_SAE = Deadline(
    code="irb_sae", applies_to="serious_unexpected_related", within_hours=24, report_to="IRB"
)
DEATH = Deadline(code="dsmb_death", applies_to="death", within_hours=48, report_to="DSMB")
IRB_UP = Deadline(code="irb_up", applies_to="unanticipated", within_working_days=5, report_to="IRB")
ANY = Deadline(code="any", applies_to="any", within_working_days=1, report_to="sponsor")
SERIOUS = Deadline(code="serious", applies_to="serious", within_hours=72, report_to="sponsor")
STUDY = [IRB_SAE, DEATH, IRB_UP]

SAE: dict[str, Any] = {
    "AETERM": "Overdose",
    "AESER": True,
    "AESLIFE": True,
    "AEREL": "possible",
    "AEEXPECT": False,
    "AEOUT": "recovering",
}


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def v(
    number: int, at: datetime, kind: VersionKind = VersionKind.follow_up, **fields: Any
) -> Stamped:
    return Stamped(Version(number, kind, fields), at)


def due(deadlines: list[Deadline], *versions: Stamped) -> dict[str, tuple[bool, datetime]]:
    return {d.code: (d.applies, d.due_at) for d in compute(deadlines, versions, NY)}


def test_aware_on_the_day_of_recording_starts_the_clock_at_recording() -> None:
    at = ny(2026, 3, 10, 15, 30)
    found = due(STUDY, v(1, at, VersionKind.initial, aware_on="2026-03-10", **SAE))
    assert found == {"irb_sae": (True, utc(2026, 3, 11, 19, 30))}


def test_aware_on_an_earlier_day_starts_the_clock_at_its_local_midnight() -> None:
    at = ny(2026, 3, 12, 9, 0)
    found = due(STUDY, v(1, at, VersionKind.initial, aware_on="2026-03-10", **SAE))
    # midnight of 10 March in New York (EDT since 8 March) + 24 h: overdue when recorded
    assert found["irb_sae"] == (True, utc(2026, 3, 11, 4, 0))


@pytest.mark.parametrize(
    ("aware", "recorded", "due_at"),
    [
        # spring forward (8 March 2026, 02:00 EST -> 03:00 EDT): 24 elapsed hours
        ("2026-03-07", ny(2026, 3, 9, 8), utc(2026, 3, 8, 5, 0)),
        ("2026-03-08", ny(2026, 3, 8, 1, 30), utc(2026, 3, 9, 6, 30)),
        # fall back (1 November 2026, 02:00 EDT -> 01:00 EST)
        ("2026-10-31", ny(2026, 11, 2, 8), utc(2026, 11, 1, 4, 0)),
        ("2026-11-01", ny(2026, 11, 1, 0, 30), utc(2026, 11, 2, 4, 30)),
    ],
)
def test_hours_are_elapsed_hours_across_daylight_saving_changes(
    aware: str, recorded: datetime, due_at: datetime
) -> None:
    found = due([IRB_SAE], v(1, recorded, VersionKind.initial, aware_on=aware, **SAE))
    assert found["irb_sae"] == (True, due_at)


def test_clock_start_before_spring_forward_is_local_midnight() -> None:
    assert clock_start(date(2026, 3, 8), ny(2026, 3, 9, 12), NY) == utc(2026, 3, 8, 5)
    assert clock_start(date(2026, 3, 9), ny(2026, 3, 9, 12), NY) == utc(2026, 3, 9, 16)


@pytest.mark.parametrize(
    ("aware", "count", "last"),
    [
        (date(2026, 3, 9), 5, date(2026, 3, 16)),  # Monday -> next Monday
        (date(2026, 3, 13), 1, date(2026, 3, 16)),  # Friday -> Monday
        (date(2026, 3, 13), 5, date(2026, 3, 20)),  # Friday -> next Friday
        (date(2026, 3, 14), 1, date(2026, 3, 16)),  # Saturday -> Monday
        (date(2026, 3, 15), 5, date(2026, 3, 20)),  # Sunday -> Friday
        (date(2026, 12, 24), 2, date(2026, 12, 28)),  # holidays are not skipped
    ],
)
def test_working_days_skip_weekends(aware: date, count: int, last: date) -> None:
    assert add_working_days(aware, count) == last


def test_working_days_end_at_the_end_of_the_last_local_day() -> None:
    at = ny(2026, 3, 13, 16)  # a Friday
    found = due(STUDY, v(1, at, VersionKind.initial, aware_on="2026-03-13", unanticipated=True))
    # Friday 20 March, 23:59:59 EDT
    assert found == {"irb_up": (True, utc(2026, 3, 21, 3, 59, 59))}
    over_dst = due([IRB_UP], v(1, ny(2026, 3, 6, 9), unanticipated=True, aware_on="2026-03-06"))
    assert over_dst["irb_up"] == (True, utc(2026, 3, 14, 3, 59, 59))  # Fri 13 March, EDT


def test_an_expected_or_unrelated_serious_event_starts_no_irb_clock() -> None:
    at = ny(2026, 5, 1, 10)
    assert due(STUDY, v(1, at, **(SAE | {"AEEXPECT": True}))) == {}
    assert due(STUDY, v(1, at, **(SAE | {"AEREL": "unlikely"}))) == {}
    assert due(STUDY, v(1, at, **(SAE | {"AEREL": "not_related", "AERELPROC": "probable"})))
    assert due(STUDY, v(1, at, **(SAE | {"AESER": False, "AESLIFE": False}))) == {}


def test_partial_reports_count_on_the_safe_side() -> None:
    at = ny(2026, 5, 1, 10)
    # expectedness not assessed yet: unexpected; a criterion alone makes it serious
    found = due([IRB_SAE, SERIOUS, ANY], v(1, at, AESHOSP=True, AEREL="definite"))
    assert set(found) == {"irb_sae", "serious", "any"}
    assert due([IRB_SAE], v(1, at, AESER=True)) == {}  # relatedness unknown: not related


def test_a_follow_up_that_makes_it_apply_starts_the_clock_on_its_own_day() -> None:
    first = v(1, ny(2026, 5, 1, 10), VersionKind.initial, aware_on="2026-05-01", AESER=False)
    later = v(2, ny(2026, 5, 4, 11), AESER=True, AESHOSP=True, AEREL="probable")
    found = due(STUDY, first, later)
    assert found == {"irb_sae": (True, utc(2026, 5, 5, 15))}  # 4 May 11:00 EDT + 24 h
    told_late = v(2, ny(2026, 5, 4, 11), AESER=True, AEREL="probable", aware_on="2026-05-02")
    assert due(STUDY, first, told_late)["irb_sae"] == (True, utc(2026, 5, 3, 4))


def test_a_review_or_follow_up_can_stop_a_deadline_applying() -> None:
    at = ny(2026, 5, 1, 10)
    first = v(1, at, VersionKind.initial, aware_on="2026-05-01", **SAE)
    review = v(2, ny(2026, 5, 1, 12), VersionKind.review, AEREL="not_related")
    found = due(STUDY, first, review)
    assert found == {"irb_sae": (False, utc(2026, 5, 2, 14))}
    # applies again after a later review: the first clock stands (the earlier due time)
    again = v(3, ny(2026, 5, 3, 9), VersionKind.review, AEREL="possible")
    assert due(STUDY, first, review, again) == {"irb_sae": (True, utc(2026, 5, 2, 14))}
    # the reporter's follow-up can stop it too (expected after all)...
    follow = v(2, ny(2026, 5, 1, 12), AEEXPECT=True)
    assert due(STUDY, first, follow)["irb_sae"][0] is False
    # ...but not bring back what the review's causality stopped
    related = v(3, ny(2026, 5, 2, 9), AEREL="definite")
    assert due(STUDY, first, review, related)["irb_sae"][0] is False


def test_death_by_outcome_or_criterion() -> None:
    at = ny(2026, 6, 1, 8)
    assert due(STUDY, v(1, at, AEOUT="fatal"))["dsmb_death"] == (True, utc(2026, 6, 3, 12))
    assert "dsmb_death" in due(STUDY, v(1, at, AESDTH=True, AESER=True))


def test_an_overdue_deadline_is_lifted_by_a_medical_review_never_by_a_follow_up() -> None:
    opened = v(1, ny(2026, 3, 10, 15, 30), VersionKind.initial, aware_on="2026-03-10", **SAE)
    before_due = v(2, ny(2026, 3, 11, 9, 0), AEEXPECT=True)  # within the 24 hours
    assert due(STUDY, opened, before_due) == {"irb_sae": (False, utc(2026, 3, 11, 19, 30))}
    late = v(2, ny(2026, 3, 12, 9, 0), AEEXPECT=True)  # a day after it was due
    assert due(STUDY, opened, late) == {"irb_sae": (True, utc(2026, 3, 11, 19, 30))}
    review = v(3, ny(2026, 3, 12, 10, 0), VersionKind.review, AEEXPECT=True)
    assert due(STUDY, opened, late, review) == {"irb_sae": (False, utc(2026, 3, 11, 19, 30))}
