"""Consents through the API (SPEC 10): a participant's consents, their signed copies
and countersignatures, consents taken in person; amendments adding a consent version;
who has not re-consented yet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import BaseUrl, ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.params import CodePath, SlugPath
from app.audit import service as audit
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.consent import service
from app.consent.models import Consent, ConsentMethod
from app.consent_admin import amendments
from app.consent_admin.schemas import (
    AmendmentRead,
    ConsentRead,
    InPersonConsent,
    OutstandingLine,
    OutstandingList,
)
from app.idempotency.deps import IdempotencyDep
from app.participants.service import get_participant
from app.studies.definition import ConsentDocument
from app.studies.service import RowLock, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["consent"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

Manager = Annotated[Principal, Depends(require(Permission.manage_consent))]
Admin = Annotated[Principal, Depends(require(Permission.manage_studies))]
ConsentId = Annotated[int, Path(ge=1, le=2**53)]


def consent_read(line: service.ConsentLine, *, base: str, slug: str, code: str) -> ConsentRead:
    c: Consent = line.consent
    return ConsentRead(
        id=c.id,
        version=c.version,
        language=c.language,
        signed_at=c.signed_at,
        method=c.method,
        document_sha256=c.document_sha256,
        state=line.state,
        obtained_on=c.obtained_on,
        obtained_by=c.obtained_by,
        countersigned_at=c.countersigned_at,
        countersigned_by=c.countersigned_by,
        pdf=f"{base}/api/v1/studies/{slug}/participants/{code}/consents/{c.id}.pdf"
        if c.method == ConsentMethod.electronic
        else None,
    )


@router.get("/participants/{code}/consents", response_model=list[ConsentRead])
def list_consents(
    slug: SlugPath, code: CodePath, session: ReadSessionDep, user: Manager, base: BaseUrl
) -> list[ConsentRead]:
    """The participant's consents, oldest first, each with its state."""
    study = get_study(session, slug=slug, user=user)
    participant = get_participant(session, study=study, code=code, user=user)
    lines = service.lines(session, study=study, participant_id=participant.id)
    return [consent_read(line, base=base, slug=slug, code=code) for line in lines]


@router.get(
    "/participants/{code}/consents/{consent_id}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def consent_pdf(
    slug: SlugPath, code: CodePath, consent_id: ConsentId, session: SessionDep, user: Manager
) -> Response:
    """The signed copy, as the participant was sent it (the reading is audited)."""
    study = get_study(session, slug=slug, user=user)
    participant = get_participant(session, study=study, code=code, user=user)
    consent = service.get_consent(session, participant_id=participant.id, consent_id=consent_id)
    data = service.read_pdf(
        session, study=study, consent=consent, participant_code=code, actor=user
    )
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{code}-consent-{consent.id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/participants/{code}/consents/{consent_id}/countersign", response_model=ConsentRead)
def countersign(
    slug: SlugPath,
    code: CodePath,
    consent_id: ConsentId,
    session: SessionDep,
    idempotency: IdempotencyDep,
    user: Manager,
    base: BaseUrl,
) -> Response:
    """A coordinator's countersignature, when the study asks for one (409 a second time)."""
    study = get_study(session, slug=slug, user=user, lock=RowLock.for_no_key_update)
    participant = get_participant(session, study=study, code=code, user=user)
    consent = service.get_consent(session, participant_id=participant.id, consent_id=consent_id)
    service.countersign(session, study=study, consent=consent, actor=user)
    line = service.line_of(session, study=study, consent=consent)
    return idempotency.remember(consent_read(line, base=base, slug=slug, code=code))


@router.post("/participants/{code}/consents", status_code=201, response_model=ConsentRead)
def record_in_person(
    slug: SlugPath,
    code: CodePath,
    body: InPersonConsent,
    session: SessionDep,
    idempotency: IdempotencyDep,
    user: Manager,
    base: BaseUrl,
) -> Response:
    """A consent taken in person (a re-consent on paper, say): obtained by the caller."""
    study = get_study(session, slug=slug, user=user, lock=RowLock.for_no_key_update)
    participant = get_participant(session, study=study, code=code, user=user, for_update=True)
    now = audit.lock_chain_head(session).at
    consent = service.record_in_person(
        session,
        study=study,
        site_id=participant.site_id,
        participant_id=participant.id,
        participant_code=participant.code,
        version=body.version,
        obtained_on=body.obtained_on,
        note=body.note,
        actor=user,
        now=now,
    )
    service.note_current_version(session, participant=participant)
    line = service.line_of(session, study=study, consent=consent)
    return idempotency.remember(consent_read(line, base=base, slug=slug, code=code))


@router.post("/consent-versions", status_code=201, response_model=AmendmentRead)
def add_consent_version(
    slug: SlugPath,
    body: ConsentDocument,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Admin,
) -> Response:
    """An amendment: the new consent version (in every language of the study), which
    people sign from now on; everyone taking part is invited to re-consent."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_update)
    now = audit.lock_chain_head(session).at
    done = amendments.amend(session, study=study, document=body, actor=actor, now=now)
    return idempotency.remember(
        AmendmentRead(version=done.version, revision=done.revision, invited=done.invited)
    )


@router.get("/consents/outstanding", response_model=OutstandingList)
def outstanding(slug: SlugPath, session: ReadSessionDep, user: Manager) -> OutstandingList:
    """Who taking part (at the caller's sites) has not consented to the active version."""
    study = get_study(session, slug=slug, user=user)
    version, lines = amendments.outstanding(session, study=study, user=user)
    return OutstandingList(
        version=version,
        items=[
            OutstandingLine(
                code=x.code,
                site=x.site,
                current_version=x.current_version,
                invited_at=x.invited_at,
                invitation=x.invitation,
            )
            for x in lines
        ],
    )
