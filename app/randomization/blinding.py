"""Blinding (pure): what each role may see of allocations, studies and participants.

Two things can unblind someone:

- **arms**: the arm of a participant (in an allocation, a randomize answer, a
  participant's record) and the arms of a study. A study lists the roles that may see
  them (`blinding.arm_visible_to`); the blinded statistician is never among them.
- **the design**: the block sizes (known sizes let site staff predict the last slots of
  a block) and, after database lock, the study secret (with it, anyone who knows the
  participants' strata and order re-derives every arm). Only roles that may read the
  allocation ledger see them.

Services ask `view_of` once and choose the response schema from its answer: a blinded
schema has no field for what it hides, so nothing can fill it by mistake.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.auth.permissions import Permission, has_permission
from app.auth.principal import Role

# Whatever a study says, the blinded statistician never sees an arm.
NEVER_SEES_ARMS = frozenset({Role.statistician})


@dataclass(frozen=True)
class View:
    """What one role may see in one study."""

    arms: bool
    design: bool


def may_see_arms(role: Role, arm_visible_to: Iterable[Role]) -> bool:
    """Whether the role may see real arms in a study whose blinding lists `arm_visible_to`."""
    return role not in NEVER_SEES_ARMS and role in set(arm_visible_to)


def may_see_design(role: Role) -> bool:
    """Whether the role may see block sizes, and the secret once the study is locked."""
    return has_permission(role, Permission.read_allocations)


def view_of(role: Role, arm_visible_to: Iterable[Role]) -> View:
    """What the role may see in a study whose blinding lists `arm_visible_to`."""
    return View(arms=may_see_arms(role, arm_visible_to), design=may_see_design(role))
