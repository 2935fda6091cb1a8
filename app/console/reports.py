"""A study's reports: CONSORT counts and diagram, retention and balance."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Response

from app.api.deps import ReadSessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission
from app.console.deps import Staff, console_router, needs, study_view
from app.console.shared import retention_rows
from app.reports import service as reports
from app.reports.svg import consort_svg, description
from app.studies import service as studies

router = console_router()

ReportReader = Annotated[Staff, needs(Permission.read_reports)]


@router.get("/studies/{slug}/reports/consort.svg", response_class=Response)
def consort_diagram(slug: SlugPath, session: ReadSessionDep, staff: ReportReader) -> Response:
    """The CONSORT flow diagram (SVG), groups coded as the role sees them."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    flow = reports.consort(session, study=study, user=staff.user)
    return Response(
        consort_svg(flow),
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/studies/{slug}/reports")
def reports_page(
    request: Request, slug: SlugPath, session: ReadSessionDep, staff: ReportReader
) -> Response:
    """CONSORT counts and diagram, retention and balance, with the JSON and SVG links."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user)
    flow = reports.consort(session, study=study, user=user)
    context = {
        "flow": flow,
        "flow_text": description(flow),
        "retention": retention_rows(reports.retention(session, study=study, user=user), flow),
        "balance": reports.balance(session, study=study, user=user),
        "groups": [(g.code, g.label) for g in flow.groups],
    }
    return study_view(request, staff, study, "console/reports.html", context)
