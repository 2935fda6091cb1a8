"""A participant's consents on their record page (SPEC 10), and who has not re-consented.

The section lists every consent with its state in words, the signed copy to download
(electronic ones), a countersignature button when the study countersigns, and the form
that records a consent taken in person. Each action calls the service the API calls
(`consent.service`, `consent_admin.amendments`) with the signed-in user as the actor;
roles without `manage_consent` see no section at all, as the API refuses them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.audit import service as audit
from app.auth.models import User
from app.auth.permissions import Permission
from app.consent import service as consents
from app.consent.models import Consent, ConsentMethod
from app.consent_admin import amendments
from app.consent_admin.schemas import InPersonConsent
from app.console.deps import (
    CheckedForm,
    Staff,
    console_router,
    needs,
    not_cross_site,
    study_view,
)
from app.console.forms import FormRefused, field_errors, text, validated
from app.console.shared import acting, back
from app.errors import InvalidInput
from app.exports import downloads
from app.i18n.languages import LANGUAGES
from app.participants import service as participants
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.studies import service as studies
from app.studies.models import Study

router = console_router()

Manager = Annotated[Staff, needs(Permission.manage_consent)]
ConsentId = Annotated[int, Path(ge=1, le=2**53)]

STATE_WORDS = {
    "signed": "Signed",
    "countersigned": "Signed and countersigned",
    "requires_reconsent": "Needs re-consent to the new version",
    "superseded": "Replaced by a later consent",
}
METHOD_WORDS = {ConsentMethod.electronic: "Electronic", ConsentMethod.in_person: "In person"}
RECORD_FIELDS = ("version", "obtained_on", "note")
RECORD_MESSAGES = {
    "version": "Choose the consent version the participant signed",
    "obtained_on": "Enter the day consent was taken, like 2026-03-01, not in the future",
    "note": "Enter a note of up to 2,000 characters, or leave it empty",
}
NOTE_MAX = 2000
SHORT_HASH = 12  # characters of the document's SHA-256 shown in the table


def language_words(code: str) -> str:
    known = LANGUAGES.get(code)
    return f"{known.name} ({code})" if known else code


def section(session: Session, staff: Staff, study: Study, participant: Participant) -> Any:
    """The record page's consents section (None for roles that may not see consents)."""
    if not staff.may(Permission.manage_consent):
        return None
    definition = studies.definition_of(study)
    lines = consents.lines(session, study=study, participant_id=participant.id)
    people = {c.obtained_by for c in (x.consent for x in lines)} | {
        c.countersigned_by for c in (x.consent for x in lines)
    }
    people.discard(None)
    emails: dict[int | None, str] = {}
    if people:
        found = session.execute(select(User.id, User.email).where(User.id.in_(people)))
        emails = {user_id: email for user_id, email in found}
    zone = definition.zone()
    rows = []
    for line in lines:
        c: Consent = line.consent
        day = c.obtained_on or c.signed_at.astimezone(zone).date()
        rows.append(
            {
                "id": c.id,
                "version": c.version,
                "language": language_words(c.language),
                "method": METHOD_WORDS.get(c.method, str(c.method)),
                "electronic": c.method == ConsentMethod.electronic,
                "day": day,
                "time": None
                if c.method == ConsentMethod.in_person
                else c.signed_at.astimezone(zone).strftime("%H:%M"),
                "obtained_by": emails.get(c.obtained_by) if c.obtained_by else None,
                "state": line.state,
                "state_words": STATE_WORDS.get(line.state, line.state),
                "sha": c.document_sha256,
                "countersigned_by": emails.get(c.countersigned_by) if c.countersigned_by else None,
                "countersign": definition.consent.countersign
                and c.method == ConsentMethod.electronic
                and c.countersigned_at is None
                and line.state != "superseded",
            }
        )
    return {
        "rows": rows,
        "versions": definition.consent_versions,
        "short": SHORT_HASH,
        "may_record": participant.status
        in (ParticipantStatus.enrolled, ParticipantStatus.randomized),
    }


@router.get("/studies/{slug}/participants/{code}/consents/{consent_id}.pdf")
def consent_pdf(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    consent_id: ConsentId,
    session: SessionDep,
    staff: Manager,
) -> Response:
    """The signed copy as the participant was sent it; the reading is audited, so a
    download another site's page started is refused."""
    not_cross_site(request)
    study = studies.get_study(session, slug=slug, user=staff.user)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    consent = consents.get_consent(session, participant_id=participant.id, consent_id=consent_id)
    data = consents.read_pdf(
        session, study=study, consent=consent, participant_code=code, actor=staff.user
    )
    headers = downloads.attachment(f"{participant.code}-consent-{consent.id}.pdf")
    return Response(data, media_type="application/pdf", headers=headers)


@router.post("/studies/{slug}/participants/{code}/consents/{consent_id}/countersign")
def countersign(
    slug: SlugPath,
    code: CodePath,
    consent_id: ConsentId,
    session: SessionDep,
    staff: Manager,
    form: CheckedForm,
) -> Response:
    """Countersign the consent (a page saying so if it is done already, or the study
    does not countersign)."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    consent = consents.get_consent(session, participant_id=participant.id, consent_id=consent_id)
    consents.countersign(session, study=study, consent=consent, actor=staff.user)
    return back(study, f"/participants/{participant.code}", done="countersigned")


def _record_page(
    request: Request,
    staff: Staff,
    study: Study,
    participant: Participant,
    typed: dict[str, str],
    errors: dict[str, str],
) -> Response:
    context = {
        "participant": participant,
        "typed": typed,
        "errors": errors,
        "versions": studies.definition_of(study).consent_versions,
    }
    return study_view(
        request, staff, study, "console/consent_record.html", context, status_code=422
    )


@router.post("/studies/{slug}/participants/{code}/consents")
def record_in_person(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Manager,
    form: CheckedForm,
) -> Response:
    """Record a consent taken in person (a re-consent on paper, say), obtained by the
    user: the version, the day (not in the future) and a note kept in the audit trail."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(
        session, study=study, code=code, user=staff.user, for_update=True
    )
    typed = {
        "version": text(form, "version", 64),
        "obtained_on": text(form, "obtained_on", 32),
        "note": text(form, "note", NOTE_MAX + 1),
    }
    try:
        # The API's schema for the body, then the service's rules (the version is the
        # study's, the day not in the future).
        body = validated(InPersonConsent, {k: v for k, v in typed.items() if v})
        consents.record_in_person(
            session,
            study=study,
            site_id=participant.site_id,
            participant_id=participant.id,
            participant_code=participant.code,
            version=body.version,
            obtained_on=body.obtained_on,
            note=body.note,
            actor=staff.user,
            now=audit.lock_chain_head(session).at,
        )
    except InvalidInput as invalid:
        errors = field_errors(invalid.problems, fields=RECORD_FIELDS, messages=RECORD_MESSAGES)
        raise FormRefused(_record_page(request, staff, study, participant, typed, errors)) from None
    consents.note_current_version(session, participant=participant)
    return back(study, f"/participants/{participant.code}", done="consent_recorded")


@router.get("/studies/{slug}/consents/outstanding")
def outstanding_page(
    request: Request, slug: SlugPath, session: ReadSessionDep, staff: Manager
) -> Response:
    """Who taking part (at the user's sites) has not consented to the active version,
    with their current version and what became of their invitation."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    version, lines = amendments.outstanding(session, study=study, user=staff.user)
    zone = studies.definition_of(study).zone()
    context = {
        "version": version,
        "rows": lines,
        "zone": zone,
        "invitation_words": {
            "pending": "Waiting to be sent",
            "sent": "Sent",
            "failed": "Could not be sent",
        },
    }
    return study_view(request, staff, study, "console/consents_outstanding.html", context)


def reconsent_summary(session: Session, staff: Staff, study: Study) -> dict[str, Any] | None:
    """For the worklist: how many at the user's sites have not consented to the active
    version (None for roles without `manage_consent`, or when nobody is outstanding)."""
    if not staff.may(Permission.manage_consent):
        return None
    definition = studies.definition_of(study)
    active = definition.consent.active()
    if active is None:  # no consent documents: nobody is ever asked to re-consent
        return None
    version = active.version
    count = amendments.count_outstanding(session, study=study, version=version, user=staff.user)
    return {"count": count, "version": version} if count else None
