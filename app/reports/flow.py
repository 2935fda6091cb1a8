"""The CONSORT flow of a trial as plain numbers (pure): what the reports count and the
diagram draws."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TimepointFlow:
    """One timepoint of one group: surveys completed, missed (window over, not answered)
    and pending (scheduled or open)."""

    timepoint: str
    label: str  # as shown to people, e.g. "Month 4"
    completed: int
    missed: int
    pending: int


@dataclass(frozen=True)
class GroupFlow:
    """One group of the randomized: its code ("G1", or the arm's code for roles that
    see arms), how it is shown ("G1", or the arm's label), how many were allocated to it,
    how many withdrew after randomization, how they left (by the strongest kind
    recorded), and each follow-up timepoint. Those who discontinued the intervention
    are still followed and analysed (intention to treat): they are not `withdrawn`."""

    code: str
    label: str
    randomized: int
    withdrawn: int  # left the study: lost + withdrew + withdrew_data + died
    timepoints: list[TimepointFlow] = field(default_factory=list)
    discontinued_intervention: int = 0
    lost_to_follow_up: int = 0
    withdrew: int = 0  # from follow-up
    withdrew_data: int = 0  # consent to the use of their data
    died: int = 0


@dataclass(frozen=True)
class ConsortFlow:
    """Screened → ineligible (by reason) → enrolled → randomized → per group."""

    study_title: str
    screened: int
    ineligible: int
    ineligible_by_reason: dict[str, int]  # reason as shown to people → participants
    enrolled: int
    withdrawn_before_randomization: int
    awaiting_randomization: int
    randomized: int
    groups: list[GroupFlow]
