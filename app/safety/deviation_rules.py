"""Protocol deviations (pure): categories, and how a deviation's versions fold.

A deviation is recorded by staff, or proposed by the system (a survey completed after
its window closed) for a coordinator to confirm or dismiss. Like an adverse event it
is never edited in place: the record, each follow-up and the decision are versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DeviationCategory(StrEnum):
    ineligible_enrolled = "ineligible_enrolled"
    consent_error = "consent_error"
    outside_window = "outside_window"
    wrong_arm = "wrong_arm"
    other = "other"


class DeviationState(StrEnum):
    proposed = "proposed"  # by the system, waiting for a coordinator
    confirmed = "confirmed"  # recorded by staff, or a proposal confirmed
    dismissed = "dismissed"  # a proposal a coordinator found was no deviation


class DeviationVersionKind(StrEnum):
    proposed = "proposed"
    initial = "initial"
    follow_up = "follow_up"
    confirmation = "confirmation"
    dismissal = "dismissal"


DEVIATION_FIELDS = ("category", "occurred_on", "description", "important", "corrective_action")


@dataclass(frozen=True)
class DeviationVersion:
    number: int
    kind: DeviationVersionKind
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class DeviationStateView:
    fields: dict[str, Any] = field(default_factory=dict)
    state: DeviationState = DeviationState.confirmed
    versions: int = 0


def fold_deviation(versions: Iterable[DeviationVersion]) -> DeviationStateView:
    """The deviation after these versions, in their order."""
    values: dict[str, Any] = {}
    state = DeviationState.confirmed
    count = 0
    for version in sorted(versions, key=lambda v: v.number):
        count += 1
        values.update({k: v for k, v in version.fields.items() if k in DEVIATION_FIELDS})
        if version.kind is DeviationVersionKind.proposed:
            state = DeviationState.proposed
        elif version.kind in (DeviationVersionKind.initial, DeviationVersionKind.confirmation):
            state = DeviationState.confirmed
        elif version.kind is DeviationVersionKind.dismissal:
            state = DeviationState.dismissed
    return DeviationStateView(fields=values, state=state, versions=count)
