"""Export downloads as HTTP answers, the same for the API and the console: each
started (audited) in the request's transaction, then streamed."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from fastapi import Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.auth.principal import Principal
from app.db.engine import Database
from app.exports import safety_tables, service
from app.exports.dataset import Column, Shape, columns
from app.exports.formats import codebook_csv
from app.exports.safety_tables import SafetyTable
from app.exports.service import Export, Format, Kind
from app.studies import service as studies
from app.studies.models import Study
from app.surveys.scheduling import local_date

# An unblinded export says why the arms are needed: enough words for an auditor to read
# (a one-letter reason is no reason).
REASON_MIN_LENGTH = 10


def reason_length(reason: str) -> int:
    """How many characters of a reason a reader sees: letters, digits, punctuation and
    symbols (not spaces, controls, format characters such as zero-width spaces, or
    combining marks); 0 when it has no letter at all."""
    seen = [c for c in reason if unicodedata.category(c)[0] in "LNPS"]
    return len(seen) if any(unicodedata.category(c)[0] == "L" for c in seen) else 0


def check_reason(reason: str) -> str:
    """The reason, if a reader would see at least REASON_MIN_LENGTH characters of it."""
    if reason_length(reason) < REASON_MIN_LENGTH:
        raise ValueError(
            f"say why the arms are needed: at least {REASON_MIN_LENGTH} visible characters, "
            "with words"
        )
    return reason


REASON_MAX_LENGTH = 2000

MEDIA = {
    Format.csv: "text/csv; charset=utf-8",
    Format.json: "application/json",
    Format.dta: "application/x-stata-dta",
    Format.sav: "application/x-spss-sav",
}


def dataset(
    db: Database,
    session: Session,
    *,
    study: Study,
    user: Principal,
    fmt: Format,
    shape: Shape,
    reason: str | None = None,
    participants: bool = False,
    table: SafetyTable | None = None,
) -> StreamingResponse:
    """The blinded dataset (or with `participants` its participant-level file, with
    `table` a safety table), or with a `reason` the unblinded one (for roles the study
    shows arms to), audited as started now and as completed at its last byte."""
    kind = Kind.blinded if reason is None else Kind.unblinded
    if kind is Kind.unblinded:
        studies.ensure_arms_visible(study, user=user)
    slot = service.StreamSlot()
    export = service.prepare(
        session, study=study, kind=kind, shape=shape, participants=participants, table=table
    )
    parameters = {"format": fmt, "shape": service.PARTICIPANTS if participants else shape}
    if table is not None:
        parameters = {"format": fmt, "table": table}
    service.started(session, export, parameters=parameters, actor=user, reason=reason)
    return StreamingResponse(
        service.stream(db, export, fmt=fmt, actor=user, slot=slot),
        media_type=MEDIA[fmt],
        headers=attachment(export.file_name(fmt)),
    )


def package(db: Database, session: Session, *, study: Study, user: Principal) -> StreamingResponse:
    """The Frictionless data package (zip) of the blinded dataset, long and wide."""
    slot = service.StreamSlot()
    long, wide, people = package_exports(session, study=study)
    service.started(session, long, parameters={"format": "package"}, actor=user)
    return StreamingResponse(
        service.package(db, wide, long, people, actor=user, slot=slot),
        media_type="application/zip",
        headers=attachment(dated_name(study, "blinded-package", "zip", now=long.now)),
    )


def package_exports(session: Session, *, study: Study) -> tuple[Export, Export, Export]:
    """The long, wide and participant exports of the data package."""
    blinded = Kind.blinded
    return (
        service.prepare(session, study=study, kind=blinded, shape=Shape.long),
        service.prepare(session, study=study, kind=blinded, shape=Shape.wide),
        service.prepare(session, study=study, kind=blinded, shape=Shape.long, participants=True),
    )


def dated_name(study: Study, what: str, ext: str, *, now: datetime | None = None) -> str:
    """The dated name of a download of the study: `{slug}-{what}-{today}.{ext}`, today in
    the study's time zone (the console's downloads use it too)."""
    zone = studies.definition_of(study).zone()
    today = local_date(now or datetime.now(UTC), zone)
    return service.dated_name(study.slug, what, ext, on=today)


def codebook_columns(study: Study, *, shape: Shape, table: SafetyTable | None) -> list[Column]:
    """The columns of the blinded export of that shape, or of that safety table."""
    definition = studies.definition_of(study)
    if table is not None:
        return safety_tables.columns(definition, table, unblinded=False)
    return columns(definition, shape=shape, unblinded=False)


def codebook_csv_file(study: Study, *, shape: Shape, table: SafetyTable | None = None) -> Response:
    """The codebook of the blinded export of that shape (or safety table), as CSV."""
    cols = codebook_columns(study, shape=shape, table=table)
    return Response(
        codebook_csv(cols),
        media_type=MEDIA[Format.csv],
        headers=attachment(dated_name(study, f"codebook-{table or shape}", "csv")),
    )


def attachment(filename: str) -> dict[str, str]:
    """The headers of a download: saved under `filename`, never kept by a cache (every
    file carries research data)."""
    return {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    }
