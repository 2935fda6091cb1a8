"""Blinding as a pure rule: who may see arms, and who may see the design."""

from __future__ import annotations

from app.auth.principal import Role
from app.randomization.blinding import View, may_see_arms, view_of

OPEN_LABEL = [Role.admin, Role.unblinded_statistician, Role.coordinator]
DOUBLE_BLIND = [Role.admin, Role.unblinded_statistician]


def test_arms_are_seen_only_by_the_roles_the_study_lists():
    assert may_see_arms(Role.coordinator, OPEN_LABEL)
    assert not may_see_arms(Role.coordinator, DOUBLE_BLIND)
    assert not may_see_arms(Role.admin, [Role.unblinded_statistician])


def test_the_blinded_statistician_never_sees_an_arm_whatever_the_study_says():
    assert not may_see_arms(Role.statistician, [*OPEN_LABEL, Role.statistician])


def test_block_sizes_and_the_secret_are_for_roles_that_read_the_ledger():
    assert view_of(Role.coordinator, OPEN_LABEL) == View(arms=True, design=False)
    assert view_of(Role.statistician, OPEN_LABEL) == View(arms=False, design=False)
    assert view_of(Role.unblinded_statistician, DOUBLE_BLIND) == View(arms=True, design=True)
    assert view_of(Role.admin, [Role.unblinded_statistician]) == View(arms=False, design=True)
