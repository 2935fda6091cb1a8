"""Engagement with the intervention: loading events from its platforms, and each
participant's use (SPEC 11; API.md "Added in the second release"). Both reveal the
arm: only for roles the study shows arms to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute, refuse_bad_input
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.params import SlugPath
from app.auth.deps import STAFF_ROUTES, get_current_user, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.engagement import service
from app.engagement.deps import UPLOAD_LIMIT, Checked, ImportIdempotencyDep, UploadDep
from app.engagement.schemas import ImportAnswer, SummaryList, summary_reads
from app.studies import service as studies
from app.studies.pseudonyms import pseudonym

# The load reads its file before it takes a request slot (see `deps`): the slot is among
# its own dependencies, after the file, not first as in STAFF_ROUTES. Its body is never
# JSON: a plain route, as `CheckedJsonRoute` would read a body sent as JSON (up to the
# upload's limit) into memory before refusing it.
loads = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["engagement"],
    responses=PROBLEM_RESPONSES,
    max_body_size=UPLOAD_LIMIT,
    dependencies=[Depends(get_current_user), Depends(refuse_bad_input)],
)

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["engagement"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

Reader = Annotated[Principal, Depends(require(Permission.export_unblinded))]

UPLOAD_BODY = {
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "application/jsonl": {"schema": {"type": "string"}},
    },
    "description": "CSV with a header, or JSON lines: event_id, participant (code or "
    "export pseudonym), at (ISO 8601 with offset), kind, count (1 when left out)",
}


@router.get("/engagement/summary", response_model=SummaryList)
def engagement_summary(slug: SlugPath, session: ReadSessionDep, user: Reader) -> SummaryList:
    """Each randomized participant's use of the intervention, with their arm: active
    weeks, posts, logins, first and last use, events by kind (roles the study shows
    arms to)."""
    study = studies.get_study(session, slug=slug, user=user)
    studies.ensure_arms_visible(study, user=user)
    key = studies.blinding_key_of(session, study)
    found = service.summaries(session, study=study)
    return summary_reads(found, {s.code: pseudonym(key, s.code) for s in found})


@loads.post("/engagement", response_model=ImportAnswer, openapi_extra={"requestBody": UPLOAD_BODY})
def load_engagement(
    slug: SlugPath,
    actor: Checked,
    upload: UploadDep,
    idempotency: ImportIdempotencyDep,
    session: SessionDep,
) -> Response:
    """Load engagement events (idempotent by event_id): rows at fault are rejected by
    line, the others stored; audited with the counts and the file's SHA-256."""
    study = studies.get_study(session, slug=slug, user=actor)  # locked at the end: service
    studies.ensure_arms_visible(study, user=actor)
    result = service.import_events(
        session, study=study, source=upload.file, fmt=upload.fmt, actor=actor, now=utcnow()
    )
    return idempotency.remember(ImportAnswer.of(result))
