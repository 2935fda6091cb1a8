"""The participant lifecycle as a pure rule: which status may follow which, and why not."""

from __future__ import annotations

import pytest

from app.errors import AlreadyRandomized, CannotWithdraw, NotEnrolled
from app.participants.lifecycle import (
    NEXT,
    ParticipantStatus,
    ensure_can_randomize,
    ensure_can_withdraw,
    screened,
    was_randomized,
)

S = ParticipantStatus


def test_a_screening_starts_enrolled_or_ineligible():
    assert screened(eligible=True) is S.enrolled
    assert screened(eligible=False) is S.ineligible


def test_only_enrolled_participants_are_randomized():
    ensure_can_randomize("P-1", S.enrolled, None)
    with pytest.raises(NotEnrolled):
        ensure_can_randomize("P-1", S.ineligible, None)
    with pytest.raises(NotEnrolled):
        ensure_can_randomize("P-1", S.withdrawn, S.enrolled)


def test_a_participant_is_randomized_once_even_after_withdrawing():
    with pytest.raises(AlreadyRandomized):
        ensure_can_randomize("P-1", S.randomized, None)
    with pytest.raises(AlreadyRandomized, match="P-1"):
        ensure_can_randomize("P-1", S.withdrawn, S.randomized)


def test_enrolled_and_randomized_participants_may_withdraw_once():
    ensure_can_withdraw("P-1", S.enrolled)
    ensure_can_withdraw("P-1", S.randomized)
    for status in (S.ineligible, S.withdrawn):
        with pytest.raises(CannotWithdraw):
            ensure_can_withdraw("P-1", status)


def test_withdrawal_keeps_the_allocation_for_intention_to_treat():
    assert was_randomized(S.randomized, None)
    assert was_randomized(S.withdrawn, S.randomized)
    assert not was_randomized(S.withdrawn, S.enrolled)
    assert not was_randomized(S.enrolled, None)


def test_no_status_leads_back_and_the_ends_lead_nowhere():
    order = [S.enrolled, S.randomized, S.withdrawn]
    for status, following in NEXT.items():
        for target in following:
            assert order.index(target) > order.index(status)
    assert NEXT[S.ineligible] == NEXT[S.withdrawn] == frozenset()
