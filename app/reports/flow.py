"""The CONSORT flow of a trial as plain numbers (pure): what the reports count and the
diagram draws."""

from __future__ import annotations

from collections.abc import Sequence
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
    """Screened → ineligible (by reason) → enrolled → randomized → per group.

    People who screened themselves through the public link are assessed like the others:
    ineligible ones are participant rows; eligible ones who have not finished consent
    (`consent_not_finished`) or whose signed sign-up waits for a coordinator
    (`awaiting_review`) are assessed and excluded until they become participants. Sign-ups
    a coordinator rejected, and held ones that show signs of a robot, are not assessed.
    So that the boxes add up: screened = excluded + awaiting randomization + randomized."""

    study_title: str
    screened: int
    ineligible: int
    ineligible_by_reason: dict[str, int]  # reason as shown to people → participants
    enrolled: int
    withdrawn_before_randomization: int
    awaiting_randomization: int
    randomized: int
    groups: list[GroupFlow]
    self_screened: int = 0  # of `screened`: screened themselves online
    consent_not_finished: int = 0  # eligible online, consent not signed (yet)
    awaiting_review: int = 0  # signed online, held for a coordinator's review
    online: bool = False  # the study takes sign-ups online (or took some): show their lines

    @property
    def excluded(self) -> int:
        """Assessed and not (yet) enrolled or randomized: the CONSORT "Excluded" box."""
        return (
            self.ineligible
            + self.withdrawn_before_randomization
            + self.consent_not_finished
            + self.awaiting_review
        )


# Hold reasons that say a sign-up was not made by a person (the join's checks): the
# hidden field filled in, or the page sent sooner than a person reads it. Held for those
# alone or with others, a sign-up is not assessed: CONSORT counts people. A duplicate or
# a busy address or study may be a real person, and is assessed until a coordinator
# rejects it (rejected sign-ups are never assessed).
ROBOT_SIGNS = frozenset({"honeypot", "too_fast"})
CONSENT_NOT_FINISHED = "consent_not_finished"
AWAITING_REVIEW = "awaiting_review"


def applicant_box(
    state: str, hold_reasons: Sequence[object] | None, *, participant: bool
) -> str | None:
    """Where an online sign-up is counted while it is not a participant: eligible and
    consent not signed yet (`consent_not_finished`), signed and held for review
    (`awaiting_review`), or not at all (None): a participant row already counts it
    (enrolled, or screened out), a coordinator rejected it, or it shows a robot's signs."""
    # The checks run at screening: a sign-up flagged then goes through consent like any
    # other (nothing is revealed to it), so its signs are read whatever its state.
    if participant or ROBOT_SIGNS.intersection(str(r) for r in hold_reasons or ()):
        return None
    if state in ("contact", "consent"):
        return CONSENT_NOT_FINISHED
    if state == "held":
        return AWAITING_REVIEW
    return None
