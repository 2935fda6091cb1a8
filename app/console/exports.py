"""A study's exports: the blinded dataset in each format and shape, its codebook, the
data package; the unblinded dataset, with a reason, for roles the study shows arms to."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs, not_cross_site, study_view
from app.console.forms import FormRefused, text
from app.exports import downloads
from app.exports.dataset import Shape
from app.exports.service import Format
from app.randomization import blinding
from app.studies import service as studies
from app.web.forms import first

router = console_router()

Exporter = Annotated[Staff, needs(Permission.export_blinded)]


@router.get("/studies/{slug}/exports")
def exports_page(
    request: Request, slug: SlugPath, session: ReadSessionDep, staff: Exporter
) -> Response:
    """The blinded export in each format and shape, its codebook, the data package; the
    unblinded export's form for roles the study shows arms to."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    definition = studies.definition_of(study)
    unblinded = blinding.policy_for(staff.user.role, definition).may_export_unblinded()
    context = {"unblinded": unblinded, "errors": {}, "values": {}}
    return study_view(request, staff, study, "console/exports.html", context)


@router.get(
    "/studies/{slug}/exports/blinded",
    response_class=StreamingResponse,
    dependencies=[Depends(not_cross_site)],
)
def blinded_download(
    request: Request,
    slug: SlugPath,
    session: SessionDep,
    staff: Exporter,
    fmt: Annotated[Format, Query(alias="format")] = Format.csv,
    shape: Shape = Shape.long,
) -> Response:
    """The blinded dataset (audited, streamed)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return downloads.dataset(
        request.app.state.db, session, study=study, user=staff.user, fmt=fmt, shape=shape
    )


@router.get("/studies/{slug}/exports/codebook", response_class=Response)
def codebook_download(
    slug: SlugPath, session: ReadSessionDep, staff: Exporter, shape: Shape = Shape.long
) -> Response:
    """The codebook of the blinded export (CSV)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return downloads.codebook_csv_file(study, shape=shape)


@router.get(
    "/studies/{slug}/exports/package",
    response_class=StreamingResponse,
    dependencies=[Depends(not_cross_site)],
)
def package_download(
    request: Request, slug: SlugPath, session: SessionDep, staff: Exporter
) -> Response:
    """The Frictionless data package (zip), audited and streamed."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return downloads.package(request.app.state.db, session, study=study, user=staff.user)


@router.post("/studies/{slug}/exports/unblinded", response_class=StreamingResponse)
def unblinded_download(
    request: Request,
    slug: SlugPath,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.export_unblinded)],
    form: CheckedForm,
) -> Response:
    """The unblinded dataset, with the reason it is needed (audited)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    reason = text(form, "reason")
    fmt = Format.json if first(form, "format") == "json" else Format.csv
    shape = Shape.wide if first(form, "shape") == "wide" else Shape.long
    if downloads.reason_length(reason) < downloads.REASON_MIN_LENGTH:
        wanted = f"at least {downloads.REASON_MIN_LENGTH} visible characters, with words"
        context = {
            "unblinded": True,
            "errors": {"reason": f"Enter why the arms are needed ({wanted})"},
            "values": {"format": fmt.value, "shape": shape.value, "reason": reason},
        }
        raise FormRefused(
            study_view(request, staff, study, "console/exports.html", context, status_code=422)
        )
    return downloads.dataset(
        request.app.state.db,
        session,
        study=study,
        user=staff.user,
        fmt=fmt,
        shape=shape,
        reason=reason,
    )
