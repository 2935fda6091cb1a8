"""Dependencies of study routes that need the study before the endpoint runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.params import SlugPath
from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.engine import Database
from app.studies import service


def require_visible_arms(
    slug: SlugPath,
    request: Request,
    user: Annotated[Principal, Depends(require(Permission.read_allocations))],
) -> Principal:
    """The caller, if the study's blinding lets their role see arms (else 403; 404 for a
    study they may not know). Read in a short transaction of its own, like the caller."""
    db: Database = request.app.state.db
    with db.session(write=False) as session:
        study = service.get_study(session, slug=slug, user=user)
        service.ensure_arms_visible(study, user=user)
    return user


ArmsReader = Annotated[Principal, Depends(require_visible_arms)]
