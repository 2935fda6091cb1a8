"""Adverse events (pure): the coded values (CDASH names), and an event's current state
folded from its versions.

An event is never edited in place: the initial report, each follow-up, each medical
review and the closure are versions, each holding only what it says. The state is the
fold of them, later values over earlier ones; a review's causality and expectedness
stand beside the reporter's (`assessed`), and take precedence where a rule needs one
answer (`effective`: reporting deadlines).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    mild = "mild"
    moderate = "moderate"
    severe = "severe"


class Relatedness(StrEnum):
    not_related = "not_related"
    unlikely = "unlikely"
    possible = "possible"
    probable = "probable"
    definite = "definite"


# "Related" for reporting rules: possibly, probably or definitely (the usual IRB reading
# of "related or possibly related").
RELATED = frozenset({Relatedness.possible, Relatedness.probable, Relatedness.definite})


class Outcome(StrEnum):
    recovered = "recovered"
    recovering = "recovering"
    not_recovered = "not_recovered"
    recovered_with_sequelae = "recovered_with_sequelae"
    fatal = "fatal"
    unknown = "unknown"


class ActionTaken(StrEnum):
    none = "none"
    intervention_interrupted = "intervention_interrupted"
    intervention_withdrawn = "intervention_withdrawn"
    other = "other"


class VersionKind(StrEnum):
    initial = "initial"
    follow_up = "follow_up"
    review = "review"  # medical review: causality and expectedness, by a role seeing arms
    closure = "closure"


SERIOUSNESS_CRITERIA = ("AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE")
# What a medical reviewer records; it stands beside the reporter's own assessment.
ASSESSMENT = ("AEREL", "AERELPROC", "AEEXPECT")
# Fields a version may carry besides the assessment: the report itself.
REPORT_FIELDS = (
    "AETERM",
    "AESTDTC",
    "AEENDTC",
    "aware_on",
    "AEDECOD",
    "AEBODSYS",
    "meddra_version",
    "AESEV",
    "AESER",
    *SERIOUSNESS_CRITERIA,
    *ASSESSMENT,
    "AEOUT",
    "AEACN",
    "unanticipated",
)


@dataclass(frozen=True)
class Version:
    """One version as stored: its number, kind and what it says."""

    number: int
    kind: VersionKind
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class EventState:
    """An event as its versions leave it."""

    report: dict[str, Any] = field(default_factory=dict)  # the reporter's fields
    review: dict[str, Any] = field(default_factory=dict)  # the reviewer's assessment
    closed: bool = False
    versions: int = 0

    @property
    def effective(self) -> dict[str, Any]:
        """The report with the reviewed assessment over the reporter's."""
        return {**self.report, **{k: v for k, v in self.review.items() if k in ASSESSMENT}}


def fold(versions: Iterable[Version]) -> EventState:
    """The state after these versions, in their order (by number)."""
    report: dict[str, Any] = {}
    review: dict[str, Any] = {}
    closed = False
    count = 0
    for version in sorted(versions, key=lambda v: v.number):
        count += 1
        values = {k: v for k, v in version.fields.items() if k != "note"}
        if version.kind is VersionKind.review:
            review.update({k: v for k, v in values.items() if k in ASSESSMENT})
        else:
            report.update({k: v for k, v in values.items() if k in REPORT_FIELDS})
        if version.kind is VersionKind.closure:
            closed = True
    return EventState(report=report, review=review, closed=closed, versions=count)


def is_serious(fields: Mapping[str, Any]) -> bool:
    """Serious: marked so, or meeting any seriousness criterion."""
    return bool(fields.get("AESER")) or any(fields.get(c) for c in SERIOUSNESS_CRITERIA)


def is_death(fields: Mapping[str, Any]) -> bool:
    """The event resulted in death (SPEC 8: every message to the participant stops)."""
    return bool(fields.get("AESDTH")) or fields.get("AEOUT") == Outcome.fatal


def is_related(fields: Mapping[str, Any]) -> bool:
    """Related to the intervention or to research procedures (possibly or more)."""
    return fields.get("AEREL") in RELATED or fields.get("AERELPROC") in RELATED


def is_unexpected(fields: Mapping[str, Any]) -> bool:
    """Not expected per the protocol (unassessed counts as unexpected: the safe side)."""
    return fields.get("AEEXPECT") is not True
