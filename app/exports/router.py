"""Exports of a study's data: the blinded dataset (CSV or JSON, long or wide), its
codebook, the data package, and the unblinded dataset (with a reason). Data files are
streamed; each export is audited when it starts and when its last byte is sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, StringConstraints

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.params import SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.exports import downloads
from app.exports.dataset import Shape
from app.exports.engagement_file import engagement_file
from app.exports.safety_tables import SafetyTable
from app.exports.schemas import Codebook, codebook
from app.exports.service import Format, TextFormat
from app.studies import service as studies

router = APIRouter(
    prefix="/api/v1/studies/{slug}/exports",
    tags=["exports"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)
Blinded = Annotated[Principal, Depends(require(Permission.export_blinded))]
Unblinded = Annotated[Principal, Depends(require(Permission.export_unblinded))]
FormatQuery = Annotated[
    Format,
    Query(
        alias="format",
        description="csv (UTF-8, header row), json, dta (Stata 15+) or sav (SPSS), the last "
        "two with variable and value labels",
    ),
]
ShapeQuery = Annotated[
    Shape, Query(description="long: a row per participant and timepoint; wide: per participant")
]
TableQuery = Annotated[
    SafetyTable | None,
    Query(
        description="a safety table instead of the dataset: adverse_events (a row per "
        "event, its current state) or deviations (a row per confirmed deviation); "
        "`shape` is then ignored"
    ),
]
Reason = Annotated[
    str,
    AfterValidator(downloads.check_reason),
    StringConstraints(
        strip_whitespace=True,
        min_length=downloads.REASON_MIN_LENGTH,
        max_length=downloads.REASON_MAX_LENGTH,
    ),
    Query(
        description=f"why the arms are needed (audited; at least "
        f"{downloads.REASON_MIN_LENGTH} characters)"
    ),
]
FILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "the dataset, streamed",
        "content": {m.split(";")[0]: {} for m in downloads.MEDIA.values()},
    }
}


@router.get("/blinded", response_class=StreamingResponse, responses=FILE_RESPONSES)
def blinded_export(
    slug: SlugPath,
    request: Request,
    session: SessionDep,
    user: Blinded,
    fmt: FormatQuery = Format.csv,
    shape: ShapeQuery = Shape.long,
    table: TableQuery = None,
) -> StreamingResponse:
    """The blinded dataset: pseudonyms, coded groups, strata, statuses, days from
    randomization, every exported item and score; no identifying data, dates or arms.
    With `table`, a safety table without the fields that could tell the arms."""
    study = studies.get_study(session, slug=slug, user=user)
    return downloads.dataset(
        request.app.state.db, session, study=study, user=user, fmt=fmt, shape=shape, table=table
    )


@router.get("/unblinded", response_class=StreamingResponse, responses=FILE_RESPONSES)
def unblinded_export(
    slug: SlugPath,
    request: Request,
    session: SessionDep,
    user: Unblinded,
    reason: Reason,
    fmt: FormatQuery = Format.csv,
    shape: ShapeQuery = Shape.long,
    table: TableQuery = None,
) -> StreamingResponse:
    """The blinded dataset plus each participant's arm, arm label, stratum, block, block
    size and position; for roles the study shows arms to, with a reason (audited). With
    `table`, a safety table with every field (relatedness, action taken, the medical
    review) and the arm."""
    study = studies.get_study(session, slug=slug, user=user)
    return downloads.dataset(
        request.app.state.db,
        session,
        study=study,
        user=user,
        fmt=fmt,
        shape=shape,
        reason=reason,
        table=table,
    )


@router.get(
    "/unblinded/engagement",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
    response_class=Response,
)
def unblinded_engagement(
    slug: SlugPath,
    session: SessionDep,
    user: Unblinded,
    reason: Reason,
    fmt: Annotated[TextFormat, Query(alias="format", description="csv or json")] = TextFormat.csv,
) -> Response:
    """The engagement file of the unblinded export: one row per randomized participant
    (pseudonym, coded group, arm) with their use of the intervention (active weeks,
    posts, logins, events by kind, days of first and last use); for roles the study
    shows arms to, with a reason (audited)."""
    study = studies.get_study(session, slug=slug, user=user)
    content = engagement_file(session, study=study, user=user, fmt=fmt, reason=reason, now=utcnow())
    media = downloads.MEDIA[Format(fmt)]
    name = downloads.dated_name(study, "unblinded-engagement", str(fmt))
    return Response(content, media_type=media, headers=downloads.attachment(name))


@router.get("/participants", response_class=StreamingResponse, responses=FILE_RESPONSES)
def participants_export(
    slug: SlugPath,
    request: Request,
    session: SessionDep,
    user: Blinded,
    fmt: FormatQuery = Format.csv,
) -> StreamingResponse:
    """One row per enrolled participant: pseudonym, coded group (empty before
    randomization), site and strata, status, study day of randomization, and the kind,
    category and day (from randomization) of leaving; no dates, codes or arms."""
    study = studies.get_study(session, slug=slug, user=user)
    return downloads.dataset(
        request.app.state.db,
        session,
        study=study,
        user=user,
        fmt=fmt,
        shape=Shape.long,
        participants=True,
    )


@router.get(
    "/codebook",
    response_model=Codebook,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def export_codebook(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Blinded,
    fmt: Annotated[TextFormat, Query(alias="format", description="json or csv")] = TextFormat.json,
    shape: ShapeQuery = Shape.long,
    table: TableQuery = None,
) -> Codebook | Response:
    """Every column of the blinded export of that shape (or safety table): name, label,
    type, unit, allowed values and their labels, instrument and timepoint; nothing else."""
    study = studies.get_study(session, slug=slug, user=user)
    if fmt is TextFormat.csv:
        return downloads.codebook_csv_file(study, shape=shape, table=table)
    cols = downloads.codebook_columns(study, shape=shape, table=table)
    return codebook(slug, shape, cols, table=table)


@router.get(
    "/package",
    response_class=StreamingResponse,
    responses={200: {"description": "a zip", "content": {"application/zip": {}}}},
)
def export_package(
    slug: SlugPath, request: Request, session: SessionDep, user: Blinded
) -> StreamingResponse:
    """A Frictionless data package (zip): `datapackage.json`, the blinded dataset long
    and wide, the participant file and the blinded safety tables (adverse_events,
    deviations) as CSV, Stata and SPSS, their codebooks and an R script."""
    study = studies.get_study(session, slug=slug, user=user)
    return downloads.package(request.app.state.db, session, study=study, user=user)
