"""Who is calling: the role, and the sites a site-scoped role is limited to (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    statistician = "statistician"
    unblinded_statistician = "unblinded_statistician"
    # SPEC 9: reviews adverse events (causality, expectedness) and is emailed about
    # serious ones; reads participants' safety records, not their contact details.
    safety_reviewer = "safety_reviewer"
    # SPEC 9: the data and safety monitoring board: DSMB reports only, open and closed.
    dsmb_member = "dsmb_member"


@dataclass(frozen=True)
class Principal:
    """An authenticated staff user. A plain value, not a table row: cheap, and never stale
    within a request."""

    id: int
    email: str
    role: Role
    site_ids: frozenset[int] = frozenset()
