"""Who is calling: the role, and the sites a site-scoped role is limited to (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    statistician = "statistician"
    unblinded_statistician = "unblinded_statistician"


@dataclass(frozen=True)
class Principal:
    """An authenticated staff user. A plain value, not a table row: cheap, and never stale
    within a request."""

    id: int
    email: str
    role: Role
    site_ids: frozenset[int] = frozenset()
