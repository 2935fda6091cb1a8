"""The DSMB report's pages: the open part (pooled) for staff, the closed part (by group,
letters of its own) for the DSMB, and each as a PDF."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from app.api.deps import ReadSessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission
from app.console.deps import Staff, console_router, needs, not_cross_site, study_view
from app.reports import dsmb_pdf, dsmb_service
from app.reports.dsmb import Part
from app.studies import service as studies

router = console_router()

DsmbReader = Annotated[Staff, needs(Permission.read_dsmb_open)]
PartQuery = Annotated[Part, Query(description="open (pooled) or closed (by group)")]


@router.get("/studies/{slug}/reports/dsmb")
def dsmb_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: DsmbReader,
    part: PartQuery = Part.open,
) -> Response:
    """The report's part as a page, with its PDF and the other part (if the role may)."""
    if part is Part.closed:
        not_cross_site(request)  # reading the closed part writes an audit record
    study = studies.get_study(session, slug=slug, user=staff.user)
    report = dsmb_service.report(
        request.app.state.db, session, study=study, user=staff.user, part=part, fmt="html"
    )
    closed_allowed = dsmb_service.may_read_closed(staff.user, studies.definition_of(study))
    context = {"report": report, "closed_allowed": closed_allowed}
    return study_view(request, staff, study, "console/dsmb.html", context)


@router.get("/studies/{slug}/reports/dsmb.pdf", response_class=Response)
def dsmb_pdf_file(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: DsmbReader,
    part: PartQuery = Part.open,
) -> Response:
    """The report's part as a PDF."""
    if part is Part.closed:
        not_cross_site(request)
    study = studies.get_study(session, slug=slug, user=staff.user)
    report = dsmb_service.report(
        request.app.state.db, session, study=study, user=staff.user, part=part, fmt="pdf"
    )
    name = f"{study.slug}-dsmb-{part.value}-{report.generated_on.isoformat()}.pdf"
    return Response(
        dsmb_pdf.render(report),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
