"""Use of the intervention (pure): a participant's summary, and the figures per group that
CONSORT-EHEALTH asks a report to give (item 17b: use, "dose", over time).

Chosen where the issue is silent (docs/engagement.md):

- only events from randomization on count (use before it, in a run-in, is no dose of
  the assigned intervention), and none at or after a withdrawal of consent to the use of
  one's data;
- an *active week* is a week of the participant's own follow-up (days 0-6 after their
  randomization are week 0) with at least one event: the same for everyone whatever
  their time zone or the weekday they were randomized on;
- *posts* are the events of kind `post` and `reply` (each what a person wrote in a
  group), *logins* those of kind `login`; every count is the sum of the events' `count`;
- *used in the last month*: an event in the 30 days before the report was made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

POST_KINDS = frozenset({"post", "reply"})
LOGIN_KINDS = frozenset({"login"})
LAST_MONTH = timedelta(days=30)


@dataclass
class Summary:
    """One randomized participant's use of the intervention."""

    participant_id: int
    code: str
    arm: str
    randomized_at: datetime | None = None
    active_weeks: int = 0
    first_use: datetime | None = None
    last_use: datetime | None = None
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.by_kind.values())

    @property
    def posts(self) -> int:
        return sum(n for kind, n in self.by_kind.items() if kind in POST_KINDS)

    @property
    def logins(self) -> int:
        return sum(n for kind, n in self.by_kind.items() if kind in LOGIN_KINDS)

    @property
    def used(self) -> bool:
        return self.first_use is not None

    def used_since(self, since: datetime) -> bool:
        return self.last_use is not None and self.last_use >= since

    def day_of(self, at: datetime | None) -> int | None:
        """The day of follow-up of a time (0: the day of randomization, counted in whole
        24-hour days from it)."""
        if at is None or self.randomized_at is None:
            return None
        return (at - self.randomized_at).days

    def add(self, kind: str, count: int, first: datetime, last: datetime) -> None:
        """Fold in one kind's total and its first and last event."""
        self.by_kind[kind] = self.by_kind.get(kind, 0) + count
        self.first_use = first if self.first_use is None else min(self.first_use, first)
        self.last_use = last if self.last_use is None else max(self.last_use, last)


@dataclass(frozen=True)
class GroupUsage:
    """The usage figures of one group of participants."""

    randomized: int
    any_use: int
    active_weeks: tuple[float, float, float] | None  # median, 25th and 75th percentiles
    posts: tuple[float, float, float] | None
    used_last_month: int

    @property
    def used_last_month_percent(self) -> float | None:
        return round(100 * self.used_last_month / self.randomized, 1) if self.randomized else None


def group_usage(summaries: Sequence[Summary], *, now: datetime) -> GroupUsage:
    """The figures of one group: everyone randomized in it counts (non-users as 0 weeks
    and 0 posts, as intention to treat would have it)."""
    since = now - LAST_MONTH
    return GroupUsage(
        randomized=len(summaries),
        any_use=sum(s.used for s in summaries),
        active_weeks=quartiles([s.active_weeks for s in summaries]),
        posts=quartiles([s.posts for s in summaries]),
        used_last_month=sum(s.used_since(since) for s in summaries),
    )


def quartiles(values: Sequence[int]) -> tuple[float, float, float] | None:
    """Median, 25th and 75th percentiles (linear interpolation between the closest
    ranks, as R's default type 7 and numpy's); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return (_at(ordered, 0.5), _at(ordered, 0.25), _at(ordered, 0.75))


def _at(ordered: Sequence[int], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 2)


def by_group(summaries: Sequence[Summary], group_of: Mapping[str, str]) -> dict[str, list[Summary]]:
    """The summaries by group (`group_of`: arm → group code or letter)."""
    grouped: dict[str, list[Summary]] = {group: [] for group in group_of.values()}
    for summary in summaries:
        grouped[group_of[summary.arm]].append(summary)
    return grouped
