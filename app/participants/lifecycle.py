"""A participant's lifecycle (pure): which status may follow which, and why not.

    screened ─┬─> ineligible
              └─> enrolled ──> randomized
                     │              │
                     └──> withdrawn <┘

A withdrawn participant who had been randomized keeps the allocation (intention to
treat): `was_randomized` stays true.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import AlreadyRandomized, CannotWithdraw, NotEnrolled


class ParticipantStatus(StrEnum):
    ineligible = "ineligible"
    enrolled = "enrolled"
    randomized = "randomized"
    withdrawn = "withdrawn"


NEXT: dict[ParticipantStatus, frozenset[ParticipantStatus]] = {
    ParticipantStatus.ineligible: frozenset(),
    ParticipantStatus.enrolled: frozenset(
        {ParticipantStatus.randomized, ParticipantStatus.withdrawn}
    ),
    ParticipantStatus.randomized: frozenset({ParticipantStatus.withdrawn}),
    ParticipantStatus.withdrawn: frozenset(),
}


def screened(*, eligible: bool) -> ParticipantStatus:
    """The status a screening starts in."""
    return ParticipantStatus.enrolled if eligible else ParticipantStatus.ineligible


def was_randomized(status: ParticipantStatus, withdrawn_from: str | None) -> bool:
    """Randomized, now or before a withdrawal (intention to treat keeps the arm)."""
    return status == ParticipantStatus.randomized or (
        status == ParticipantStatus.withdrawn and withdrawn_from == ParticipantStatus.randomized
    )


def ensure_can_randomize(code: str, status: ParticipantStatus, withdrawn_from: str | None) -> None:
    """Only an enrolled participant is randomized, and only once."""
    if was_randomized(status, withdrawn_from):
        raise AlreadyRandomized(f"{code} is already randomized")
    if ParticipantStatus.randomized not in NEXT[status]:
        raise NotEnrolled(f"{code} is {status}, not enrolled")


def ensure_can_withdraw(code: str, status: ParticipantStatus) -> None:
    """Only an enrolled or randomized participant can be withdrawn."""
    if ParticipantStatus.withdrawn not in NEXT[status]:
        raise CannotWithdraw(f"{code} is {status}")
