"""Kinds of leaving a study (pure; SPEC 8): what each stops, which may follow which.

Intention-to-treat analysis follows people after they stop the intervention, so
leaving is not one event. A person who stops the intervention stays `randomized` and
keeps being surveyed; every other kind makes them `withdrawn`, cancels their open and
scheduled surveys and stops every queued message at once. Kinds are ranked: a later
withdrawal may only move to a stronger kind (stopped the intervention, then lost to
follow-up, then withdrew from follow-up), never back; withdrawing consent to the use of
one's data and death end the record.

Whatever the kind, a randomized participant keeps the allocation.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from app.errors import CannotWithdraw, FieldProblem, InvalidInput


class LeavingKind(StrEnum):
    intervention = "intervention"  # stopped the intervention; still followed up
    lost = "lost"  # lost to follow-up
    follow_up = "follow_up"  # withdrew from follow-up (the plain withdrawal)
    data = "data"  # withdrew consent to the use of their data
    died = "died"


KIND_LABELS: dict[LeavingKind, str] = {
    LeavingKind.intervention: "Stopped the intervention (still followed up)",
    LeavingKind.lost: "Lost to follow-up",
    LeavingKind.follow_up: "Withdrew from follow-up",
    LeavingKind.data: "Withdrew consent to the use of their data",
    LeavingKind.died: "Died",
}

_RANK: dict[LeavingKind, int] = {
    LeavingKind.intervention: 1,
    LeavingKind.lost: 2,
    LeavingKind.follow_up: 3,
    LeavingKind.data: 4,
    LeavingKind.died: 4,
}


class LeavingCategory(StrEnum):
    adverse_event = "adverse_event"
    lack_of_benefit = "lack_of_benefit"
    burden = "burden"
    moved = "moved"
    no_longer_interested = "no_longer_interested"
    clinical_decision = "clinical_decision"
    unable_to_contact = "unable_to_contact"
    death = "death"
    other = "other"


CATEGORY_LABELS: dict[LeavingCategory, str] = {
    LeavingCategory.adverse_event: "Adverse event",
    LeavingCategory.lack_of_benefit: "No benefit felt",
    LeavingCategory.burden: "Too much burden (time, surveys, travel)",
    LeavingCategory.moved: "Moved away",
    LeavingCategory.no_longer_interested: "No longer interested",
    LeavingCategory.clinical_decision: "Clinical decision",
    LeavingCategory.unable_to_contact: "Could not be contacted",
    LeavingCategory.death: "Death",
    LeavingCategory.other: "Other",
}


def leaves_study(kind: LeavingKind) -> bool:
    """Whether the kind makes the participant `withdrawn`: surveys cancelled, every
    queued message stopped (all kinds but stopping the intervention)."""
    return kind is not LeavingKind.intervention


def ensure_can_leave(
    code: str, *, kind: LeavingKind, previous: str | None, randomized: bool
) -> None:
    """Refuse (409) a kind weaker than or as strong as the one already recorded, and
    stopping an intervention that a participant not yet randomized never started."""
    if kind is LeavingKind.intervention and not randomized:
        raise CannotWithdraw(f"{code} is not randomized: there is no intervention to stop")
    if previous is None:
        return
    before = LeavingKind(previous)
    if _RANK[kind] <= _RANK[before]:
        raise CannotWithdraw(
            f"{code} already left the study as {before.value!r}: only a stronger kind may follow"
        )


def kinds_allowed(code: str, *, previous: str | None, randomized: bool) -> list[LeavingKind]:
    """The kinds of leaving that may be recorded now, in order (a form offers only these):
    those `ensure_can_leave` takes."""
    allowed = []
    for kind in LeavingKind:
        try:
            ensure_can_leave(code, kind=kind, previous=previous, randomized=randomized)
        except CannotWithdraw:
            continue
        allowed.append(kind)
    return allowed


def check_date(
    on: date,
    *,
    today: date,
    enrolled_on: date | None,
    previous_on: date | None,
    randomized_on: date | None = None,
) -> None:
    """The date someone left: not in the future, not before they enrolled (nor, for
    stopping the intervention, before randomization), not before an earlier leaving
    (422 naming `withdrawn_on`)."""
    problem = None
    if on > today:
        problem = f"{on.isoformat()} is in the future (today is {today.isoformat()})"
    elif enrolled_on is not None and on < enrolled_on:
        problem = f"{on.isoformat()} is before enrollment ({enrolled_on.isoformat()})"
    elif randomized_on is not None and on < randomized_on:
        problem = f"{on.isoformat()} is before randomization ({randomized_on.isoformat()})"
    elif previous_on is not None and on < previous_on:
        problem = f"{on.isoformat()} is before the earlier leaving ({previous_on.isoformat()})"
    if problem:
        raise InvalidInput([FieldProblem(("withdrawn_on",), problem)])


def answers_usable(kind: str | None, withdrawn_on: date | None, answered_on: date) -> bool:
    """Whether the research exports may carry the item values of a survey answered on
    `answered_on`. After a withdrawal of consent to the use of their data, nothing
    answered on or after that date is exported; what was collected before stays (the
    usual consent wording, and what regulators expect for the analysis). Every other
    kind keeps all answers: intention to treat."""
    return not (
        kind == LeavingKind.data and withdrawn_on is not None and answered_on >= withdrawn_on
    )


def interview_allowed(kind: str | None, withdrawn_on: date | None, on: date) -> bool:
    """Whether staff may record an interview held on `on` (a survey entered late): not
    after the participant left the study, and for a withdrawal of consent to the use of
    data not on that day either (`answers_usable`). Stopping the intervention changes
    nothing: the person is still followed up."""
    if kind is None or withdrawn_on is None or kind == LeavingKind.intervention:
        return True
    return on <= withdrawn_on and answers_usable(kind, withdrawn_on, on)
