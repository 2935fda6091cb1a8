"""Reading the audit trail (admins): the whole chain, or one study's records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.paging import PageDep
from app.api.params import SlugPath
from app.audit import service
from app.audit.schemas import AuditHead, AuditList, audit_page
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal

router = APIRouter(
    prefix="/api/v1",
    tags=["audit"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,  # a route that takes more says so (413 beyond)
    dependencies=STAFF_ROUTES,
)
Auditor = Annotated[Principal, Depends(require(Permission.read_audit))]

# Which studies' records the caller may read is the blinding policy's answer, which
# lives above this package: the application hands it in (`app.state`, set by
# `create_app`): (session, user, slug or None) -> (that study's id, ids of studies to
# leave out), raising StudyNotFound or Forbidden.
TrailScope = Callable[[Session, Principal, str | None], tuple[int | None, list[int]]]


def _trail_scope(request: Request) -> TrailScope:
    scope: TrailScope = request.app.state.audit_trail_scope
    return scope


TrailScopeDep = Annotated[TrailScope, Depends(_trail_scope)]


@router.get("/audit", response_model=AuditList)
def list_all_audit(
    session: ReadSessionDep, page: PageDep, user: Auditor, scope: TrailScopeDep
) -> AuditList:
    """The whole hash chain, oldest first: every study's records and those of no study
    (users created, for instance), as `trialdesk verify` checks them; the records of a
    study whose blinding hides arms from the caller's role are left out (they hold arms)."""
    _, hidden = scope(session, user, None)
    rows = service.list_records(
        session, study_id=None, after_seq=page.after, limit=page.limit, hidden_studies=hidden
    )
    return audit_page(rows, page.next_url(count=len(rows), last_id=rows[-1].seq if rows else None))


@router.get("/studies/{slug}/audit", response_model=AuditList)
def list_study_audit(
    slug: SlugPath, session: ReadSessionDep, page: PageDep, user: Auditor, scope: TrailScopeDep
) -> AuditList:
    """The study's audit records, oldest first (seq is global: gaps are other studies');
    403 for a role the study's blinding does not let see arms (the records hold them)."""
    study_id, _ = scope(session, user, slug)
    rows = service.list_records(session, study_id=study_id, after_seq=page.after, limit=page.limit)
    return audit_page(rows, page.next_url(count=len(rows), last_id=rows[-1].seq if rows else None))


@router.get("/studies/{slug}/audit/head", response_model=AuditHead)
def study_audit_head(
    slug: SlugPath, session: ReadSessionDep, user: Auditor, scope: TrailScopeDep
) -> AuditHead:
    """The chain's head (`seq` is global) and its newest signed anchor, kept outside the
    database (`TRIALDESK_STATE_DIR`): an auditor keeps `anchor`; `trialdesk verify` finds
    a trail cut off or rolled back behind any anchor."""
    scope(session, user, slug)  # 404 for an unknown study, 403 for a role it keeps blind
    head = service.chain_head(session)
    return AuditHead.model_validate(head, from_attributes=True)
