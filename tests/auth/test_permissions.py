"""Authorization as data: roles, permissions and how far each role reaches into sites."""

from __future__ import annotations

from app.auth.permissions import (
    ROLE_PERMISSIONS,
    SITE_SCOPE,
    Permission,
    has_permission,
    may_access_site,
    may_know_study,
    reachable_sites,
)
from app.auth.principal import Principal, Role


def test_every_role_has_a_permission_set_and_a_site_scope():
    assert set(ROLE_PERMISSIONS) == set(Role) == set(SITE_SCOPE)


def test_only_admins_manage_and_read_the_audit_trail():
    for permission in (Permission.manage_users, Permission.manage_studies, Permission.read_audit):
        assert [r for r in Role if has_permission(r, permission)] == [Role.admin]


def test_a_coordinator_reaches_only_the_sites_assigned():
    coordinator = Principal(id=1, email="c@x", role=Role.coordinator, site_ids=frozenset({3}))
    assert reachable_sites(coordinator) == {3}
    assert may_access_site(coordinator, 3) and not may_access_site(coordinator, 4)
    assert may_know_study(coordinator, frozenset({3, 9}))
    assert not may_know_study(coordinator, frozenset({4}))


def test_other_roles_reach_every_site():
    for role in (Role.admin, Role.statistician, Role.unblinded_statistician):
        user = Principal(id=1, email="u@x", role=role)
        assert reachable_sites(user) is None
        assert may_access_site(user, 42) and may_know_study(user, frozenset({42}))


def test_the_closed_dsmb_report_is_never_a_coordinators_even_in_open_label_studies():
    readers = {r for r in Role if has_permission(r, Permission.read_dsmb_closed)}
    assert readers == {Role.admin, Role.unblinded_statistician, Role.dsmb_member}
    assert all(has_permission(r, Permission.read_dsmb_open) for r in Role)


def test_a_dsmb_member_reads_reports_and_nothing_about_participants():
    assert not has_permission(Role.dsmb_member, Permission.read_participants)
    assert not has_permission(Role.dsmb_member, Permission.read_safety)
    assert not has_permission(Role.safety_reviewer, Permission.read_participants)
    assert not has_permission(Role.safety_reviewer, Permission.record_safety)
