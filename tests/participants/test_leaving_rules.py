"""The rules of leaving (pure): the order of kinds, the date, what exports may keep."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.errors import CannotWithdraw, InvalidInput
from app.participants.leaving import (
    KIND_LABELS,
    LeavingKind,
    answers_usable,
    check_date,
    ensure_can_leave,
    leaves_study,
)

K = LeavingKind
ORDER = [K.intervention, K.lost, K.follow_up]


def test_only_a_stronger_kind_may_follow_and_data_or_death_end_the_record():
    for i, before in enumerate(ORDER):
        for after in K:
            stronger = after not in ORDER[: i + 1]
            if stronger:
                ensure_can_leave("P-1", kind=after, previous=before, randomized=True)
            else:
                with pytest.raises(CannotWithdraw):
                    ensure_can_leave("P-1", kind=after, previous=before, randomized=True)
    for final in (K.data, K.died):
        for after in K:
            with pytest.raises(CannotWithdraw):
                ensure_can_leave("P-1", kind=after, previous=final, randomized=True)


def test_only_a_randomized_participant_can_stop_the_intervention():
    with pytest.raises(CannotWithdraw):
        ensure_can_leave("P-1", kind=K.intervention, previous=None, randomized=False)
    ensure_can_leave("P-1", kind=K.follow_up, previous=None, randomized=False)


def test_every_kind_but_stopping_the_intervention_leaves_the_study_and_has_a_label():
    assert [k for k in K if not leaves_study(k)] == [K.intervention]
    assert set(KIND_LABELS) == set(K)


@pytest.mark.parametrize(
    ("on", "problem"),
    [
        (date(2027, 3, 2), "in the future"),
        (date(2027, 1, 9), "before enrollment"),
        (date(2027, 2, 1), "before the earlier leaving"),
    ],
)
def test_the_date_is_not_in_the_future_nor_before_enrollment_or_an_earlier_leaving(on, problem):
    with pytest.raises(InvalidInput) as refused:
        check_date(
            on, today=date(2027, 3, 1), enrolled_on=date(2027, 1, 10), previous_on=date(2027, 2, 2)
        )
    assert refused.value.problems[0].loc == ("withdrawn_on",)
    assert problem in refused.value.problems[0].msg


def test_the_bounds_themselves_are_allowed():
    check_date(
        date(2027, 3, 1), today=date(2027, 3, 1), enrolled_on=date(2027, 3, 1), previous_on=None
    )


def test_after_withdrawing_consent_to_data_use_only_earlier_answers_are_usable():
    left = date(2027, 5, 1)
    assert answers_usable(K.data, left, date(2027, 4, 30))
    assert not answers_usable(K.data, left, left)
    assert not answers_usable(K.data, left, date(2027, 6, 1))
    for kind in (K.intervention, K.lost, K.follow_up, K.died, None):
        assert answers_usable(kind, left, date(2027, 6, 1))


def test_the_intervention_cannot_stop_before_randomization():
    with pytest.raises(InvalidInput) as refused:
        check_date(
            date(2027, 2, 1),
            today=date(2027, 3, 1),
            enrolled_on=date(2027, 1, 10),
            previous_on=None,
            randomized_on=date(2027, 2, 2),
        )
    assert "before randomization" in refused.value.problems[0].msg


def test_an_interview_may_be_recorded_up_to_the_day_the_participant_left():
    from app.participants.leaving import interview_allowed

    left = date(2026, 6, 1)
    day = timedelta(days=1)
    assert interview_allowed(None, None, left + day)  # still in the study
    assert interview_allowed("intervention", left, left + 100 * day)  # still followed up
    for kind in ("follow_up", "lost", "died"):
        assert interview_allowed(kind, left, left) and interview_allowed(kind, left, left - day)
        assert not interview_allowed(kind, left, left + day)
    # Consent to the use of data withdrawn: what was answered that day is not used either.
    assert not interview_allowed("data", left, left) and interview_allowed("data", left, left - day)
