"""Reports of a study's progress: CONSORT flow (JSON, or an SVG diagram), retention,
balance of strata. Groups are coded for roles the study does not show arms to."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.params import SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.reports import dsmb_pdf, dsmb_service, service
from app.reports.dsmb import Part
from app.reports.missed import missed_reasons
from app.reports.schemas import (
    BalanceReport,
    ConsortReport,
    DsmbReportOut,
    RetentionReport,
    balance_report,
    consort_report,
    dsmb_report_out,
    retention_report,
)
from app.reports.svg import consort_svg
from app.studies.service import get_study
from app.web.pages import page

router = APIRouter(
    prefix="/api/v1/studies/{slug}/reports",
    tags=["reports"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)
Reader = Annotated[Principal, Depends(require(Permission.read_reports))]
DsmbReader = Annotated[Principal, Depends(require(Permission.read_dsmb_open))]
StudyReader = Annotated[Principal, Depends(require(Permission.read_studies))]


class DiagramFormat(StrEnum):
    json = "json"
    svg = "svg"


@router.get(
    "/consort",
    response_model=ConsortReport,
    responses={200: {"content": {"application/json": {}, "image/svg+xml": {}}}},
)
def consort(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    fmt: Annotated[
        DiagramFormat, Query(alias="format", description="json, or svg: the flow diagram")
    ] = DiagramFormat.json,
) -> ConsortReport | Response:
    """Screened, ineligible by reason, enrolled, randomized per group, per timepoint
    completed / missed / pending per group, withdrawn."""
    study = get_study(session, slug=slug, user=user)
    flow = service.consort(session, study=study, user=user)
    if fmt is DiagramFormat.svg:
        return Response(consort_svg(flow), media_type="image/svg+xml")
    return consort_report(flow)


@router.get("/retention", response_model=RetentionReport)
def retention(slug: SlugPath, session: ReadSessionDep, user: Reader) -> RetentionReport:
    """Per timepoint and group: surveys completed, missed, pending and cancelled, and
    the share completed of those whose outcome is known; per timepoint, missed surveys
    by the reason staff gave."""
    study = get_study(session, slug=slug, user=user)
    rows = service.retention(session, study=study, user=user)
    return retention_report(rows, missed_reasons(session, study=study, user=user))


@router.get("/balance", response_model=BalanceReport)
def balance(slug: SlugPath, session: ReadSessionDep, user: Reader) -> BalanceReport:
    """Randomized participants per level of each stratification factor, per group."""
    study = get_study(session, slug=slug, user=user)
    return balance_report(service.balance(session, study=study, user=user))


class DocumentFormat(StrEnum):
    json = "json"
    html = "html"
    pdf = "pdf"


@router.get(
    "/dsmb",
    response_model=DsmbReportOut,
    responses={200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}}},
)
def dsmb_report(
    slug: SlugPath,
    request: Request,
    session: ReadSessionDep,
    user: DsmbReader,
    part: Annotated[
        Part, Query(description="open: pooled, for staff; closed: by group, for the DSMB")
    ] = Part.open,
    fmt: Annotated[
        DocumentFormat, Query(alias="format", description="json, html (a page) or pdf")
    ] = DocumentFormat.json,
) -> DsmbReportOut | Response:
    """The DSMB report: recruitment, retention, leaving, protocol deviations, adverse
    events. The closed part (groups coded A, B, C..., with the key in an appendix) only
    for the unblinded statistician, admins and DSMB members, and audited."""
    study = get_study(session, slug=slug, user=user)
    report = dsmb_service.report(
        request.app.state.db, session, study=study, user=user, part=part, fmt=fmt.value
    )
    if fmt is DocumentFormat.html:
        return page(request, "console/dsmb_document.html", {"report": report})
    if fmt is DocumentFormat.pdf:
        name = f"{study.slug}-dsmb-{part.value}-{report.generated_on.isoformat()}.pdf"
        return Response(
            dsmb_pdf.render(report),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )
    return dsmb_report_out(report)


@router.get(
    "/ctgov-adverse-events",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
def ctgov_adverse_events(
    slug: SlugPath,
    request: Request,
    session: ReadSessionDep,
    user: StudyReader,
    threshold: Annotated[
        float,
        Query(
            ge=0,
            le=100,
            description="percent: other (non-serious) adverse events are listed when, in "
            "some arm, at least this share of the participants at risk had one (0: all)",
        ),
    ] = 0,
) -> Response:
    """Adverse events by arm shaped like ClinicalTrials.gov's results module (a zip of
    CSV files): for roles that see arms, after the study is locked (409 before)."""
    study = get_study(session, slug=slug, user=user)
    archive = dsmb_service.ctgov_adverse_events(
        request.app.state.db, session, study=study, user=user, threshold=threshold
    )
    return Response(
        archive,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{study.slug}-ctgov-adverse-events.zip"',
            "Cache-Control": "no-store",
        },
    )
