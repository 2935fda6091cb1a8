"""Reading the audit trail (admins): one study's records, or the whole chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import Page, PageDep, ReadSessionDep, require
from app.api.errors import PROBLEM_RESPONSES
from app.api.routing import TransactionalRoute
from app.audit import service
from app.audit.models import AuditRecord
from app.audit.schemas import AuditList, AuditRead
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.studies.service import get_study

router = APIRouter(
    prefix="/api/v1",
    tags=["audit"],
    route_class=TransactionalRoute,
    responses=PROBLEM_RESPONSES,
)
Auditor = Annotated[Principal, Depends(require(Permission.read_audit))]


@router.get("/audit", response_model=AuditList)
def list_all_audit(session: ReadSessionDep, page: PageDep, user: Auditor) -> AuditList:
    """The whole hash chain, oldest first: every study's records and those of no study
    (users created, for instance), as `trialdesk verify` checks them."""
    rows = service.list_records(session, study_id=None, after_seq=page.after, limit=page.limit)
    return _page(rows, page)


@router.get("/studies/{slug}/audit", response_model=AuditList)
def list_audit(
    slug: str,
    session: ReadSessionDep,
    page: PageDep,
    user: Auditor,
) -> AuditList:
    """The study's audit records, oldest first (seq is global: gaps are other studies')."""
    study = get_study(session, slug=slug, user=user)
    rows = service.list_records(session, study_id=study.id, after_seq=page.after, limit=page.limit)
    return _page(rows, page)


def _page(rows: Sequence[AuditRecord], page: Page) -> AuditList:
    return AuditList(
        items=[AuditRead.model_validate(r, from_attributes=True) for r in rows],
        next=page.next_url(count=len(rows), last_id=rows[-1].seq if rows else None),
    )
