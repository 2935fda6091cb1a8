"""Roles and what each may do: authorization as data, checked by one pure function."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    statistician = "statistician"
    unblinded_statistician = "unblinded_statistician"


class Permission(StrEnum):
    manage_users = "manage_users"
    manage_studies = "manage_studies"
    read_studies = "read_studies"
    read_participants = "read_participants"
    enroll = "enroll"
    randomize = "randomize"
    withdraw = "withdraw"
    unblind = "unblind"
    read_allocations = "read_allocations"
    read_audit = "read_audit"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.coordinator: frozenset(
        {
            Permission.read_studies,
            Permission.read_participants,
            Permission.enroll,
            Permission.randomize,
            Permission.withdraw,
        }
    ),
    Role.statistician: frozenset({Permission.read_studies}),
    Role.unblinded_statistician: frozenset(
        {Permission.read_studies, Permission.unblind, Permission.read_allocations}
    ),
}

# Roles whose access to participants is limited to the sites they are assigned to.
SITE_SCOPED_ROLES = frozenset({Role.coordinator})

# Whatever a study says, the blinded statistician never sees an arm.
NEVER_SEES_ARMS = frozenset({Role.statistician})


def has_permission(role: Role, permission: Permission) -> bool:
    """Whether the role carries the permission."""
    return permission in ROLE_PERMISSIONS[role]


def may_see_arms(role: Role, arm_visible_to: Iterable[Role]) -> bool:
    """Whether the role may see real arms in a study whose blinding lists `arm_visible_to`."""
    return role not in NEVER_SEES_ARMS and role in set(arm_visible_to)
