"""Retention rules (pure): why a missed survey was missed, and when a participant is due
for a call (SPEC 11).

A participant is due for a call when a study's call rule holds for them, or when the
next step of their latest contact attempt falls on or before today. The rules are
evaluated in SQL (`calls`); what they mean is said here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class MissedReason(StrEnum):
    """Why a survey was missed, as a retention coordinator would record it."""

    unreachable = "unreachable"
    declined = "declined"
    too_unwell = "too_unwell"
    other = "other"


MISSED_REASON_LABELS: dict[str, str] = {
    MissedReason.unreachable: "Could not be reached",
    MissedReason.declined: "Declined this survey",
    MissedReason.too_unwell: "Too unwell to take part",
    MissedReason.other: "Another reason",
}

NEXT_STEP = "next_step"  # the code of the rule "a contact attempt's next step is due"


@dataclass(frozen=True)
class CallReason:
    """One reason a participant is due for a call: the rule's code and kind, and what
    it found (the survey overdue, how many messages failed, days since last reached)."""

    code: str
    kind: str
    timepoint: str | None = None
    count: int | None = None
    since: date | None = None


def silent_since(*, last_reached: date | None, taking_part_since: date) -> date:
    """The day a participant was last reached, or the day they started taking part if
    staff never reached them: `no_contact` counts days from it."""
    return max(last_reached, taking_part_since) if last_reached else taking_part_since
