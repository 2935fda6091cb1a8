"""Reports of a study's progress: CONSORT flow (JSON, or an SVG diagram), retention,
balance of strata. Groups are coded for roles the study does not show arms to."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.params import SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.reports import service
from app.reports.schemas import (
    BalanceReport,
    ConsortReport,
    RetentionReport,
    balance_report,
    consort_report,
    retention_report,
)
from app.reports.svg import consort_svg
from app.studies.service import get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}/reports",
    tags=["reports"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)
Reader = Annotated[Principal, Depends(require(Permission.read_reports))]


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
    the share completed of those whose outcome is known."""
    study = get_study(session, slug=slug, user=user)
    return retention_report(service.retention(session, study=study, user=user))


@router.get("/balance", response_model=BalanceReport)
def balance(slug: SlugPath, session: ReadSessionDep, user: Reader) -> BalanceReport:
    """Randomized participants per level of each stratification factor, per group."""
    study = get_study(session, slug=slug, user=user)
    return balance_report(service.balance(session, study=study, user=user))
