"""Who is calling: what every permission and site check needs, read once per request."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.permissions import Role


@dataclass(frozen=True)
class Principal:
    """An authenticated staff user: identity, role and the sites (and their studies) they
    are limited to. A plain value, not a table row, so it is cheap and never stale
    within a request."""

    id: int
    email: str
    role: Role
    site_ids: frozenset[int] = frozenset()
    study_ids: frozenset[int] = frozenset()
