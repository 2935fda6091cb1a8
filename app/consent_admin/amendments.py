"""Amendments (SPEC 10): a new consent version added to an enrolling study, and the
invitations to re-consent that follow.

An amendment appends one `ConsentDocument` to `consent.documents` and its version to
`consent_versions`, and nothing else: the body is the document alone, so no other
part of the definition (randomization above all) can change by this road. The whole
definition is validated again (every language, the quiz rules), problems named by
their path in the body. The study's revision is raised so that every process parses
the definition again (`studies.service.definition_of` caches by it). Every enrolled or
randomized participant (withdrawn ones are left alone) is then invited once to read
and sign the new version: one `reconsent` email each, keyed by participant and version.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import reachable_sites
from app.auth.principal import Principal
from app.consent.documents import document_sha256
from app.consent.models import Consent
from app.consent.service import invite_to_reconsent, latest_consent, reconsent_key
from app.errors import FieldProblem, InvalidInput, InvalidStudyDefinition
from app.outbox.models import OutboxMessage
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.studies.definition import ConsentDocument
from app.studies.lifecycle import ensure_enrolling
from app.studies.models import Study
from app.studies.service import definition_of
from app.studies.validation import parse_definition

TAKING_PART = (ParticipantStatus.enrolled, ParticipantStatus.randomized)


@dataclass(frozen=True)
class Amended:
    version: str
    revision: int
    invited: int  # invitations queued


def amend(
    session: Session, *, study: Study, document: ConsentDocument, actor: Principal, now: datetime
) -> Amended:
    """Add `document` as the study's active consent version and invite re-consent. The
    caller holds the study's row lock (`RowLock.for_update`)."""
    ensure_enrolling(study.status)
    before = definition_of(study)
    if document.version in before.consent_versions:
        raise InvalidInput(
            [FieldProblem(("version",), f"version {document.version!r} exists: give a new one")]
        )
    raw = copy.deepcopy(study.definition)
    raw["consent_versions"] = [*raw.get("consent_versions", []), document.version]
    consent = dict(raw.get("consent") or {})
    index = len(consent.get("documents") or [])
    consent["documents"] = [
        *(consent.get("documents") or []),
        document.model_dump(mode="json", exclude_none=True),
    ]
    raw["consent"] = consent
    try:
        parse_definition(raw)
    except InvalidStudyDefinition as error:
        raise InvalidInput([_in_body(p, index) for p in error.problems]) from None
    study.definition = raw
    study.revision += 1
    hashes = {lang: document_sha256(document, lang) for lang in sorted(document.texts)}
    audit.record(
        session,
        AuditAction.study_amended,
        actor=actor,
        entity_id=study.slug,
        study_id=study.id,
        changes={
            "consent_version": (before.consent_versions[-1], document.version),
            "document_sha256": (None, hashes),
            "revision": (study.revision - 1, study.revision),
        },
    )
    invited = invite(session, study=study, now=now)  # to the version just added
    return Amended(document.version, study.revision, invited)


def _in_body(problem: FieldProblem, index: int) -> FieldProblem:
    """A problem of the new document named by its path in the request's body."""
    loc = problem.loc
    if loc[:3] == ("consent", "documents", index):
        return FieldProblem(loc[3:] or ("version",), problem.msg)
    return FieldProblem(("definition", *loc), problem.msg)


def invite(session: Session, *, study: Study, now: datetime) -> int:
    """Queue one `reconsent` email for each participant taking part whose current
    consent is not to the active version (failed at once without an email address); how
    many were queued now (a repeat queues none)."""
    participants = session.execute(
        select(Participant.id, Participant.site_id, Participant.code, Contact.email)
        .outerjoin(Contact, Contact.participant_id == Participant.id)
        .where(Participant.study_id == study.id, Participant.status.in_(TAKING_PART))
        .order_by(Participant.id)
    ).all()
    queued = 0
    for participant_id, site_id, code, email in participants:
        queued += invite_to_reconsent(
            session,
            study=study,
            participant_id=participant_id,
            site_id=site_id,
            participant_code=code,
            has_email=bool(email),
            now=now,
        )
    return queued


@dataclass(frozen=True)
class Outstanding:
    """A participant who has not re-consented to the active version yet."""

    code: str
    site: str
    current_version: str | None
    invited_at: datetime | None
    invitation: str | None  # the email's status: pending, sent, failed


def outstanding(
    session: Session, *, study: Study, user: Principal
) -> tuple[str, list[Outstanding]]:
    """The active version, and who taking part (at the user's sites) has not given it."""
    definition = definition_of(study)
    active = definition.consent.active()
    if active is None:  # no consent documents: consent is taken in person, never re-asked
        return definition.consent_versions[-1], []
    version = active.version
    query = (
        select(Participant)
        .where(Participant.study_id == study.id, Participant.status.in_(TAKING_PART))
        .order_by(Participant.code)
    )
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(Participant.site_id.in_(sites))
    have = (
        select(Consent.participant_id)
        .where(Consent.study_id == study.id, Consent.version == version)
        .where(Consent.participant_id.is_not(None))
    )
    query = query.where(Participant.id.not_in(have))
    out = []
    for participant in session.scalars(query):
        latest = latest_consent(session, participant_id=participant.id)
        message = session.execute(
            select(OutboxMessage.created_at, OutboxMessage.status).where(
                OutboxMessage.dedupe_key == reconsent_key(participant.id, version)
            )
        ).first()
        out.append(
            Outstanding(
                code=participant.code,
                site=participant.site.code,
                current_version=latest.version if latest else None,
                invited_at=message[0] if message else None,
                invitation=str(message[1]) if message else None,
            )
        )
    return version, out


def count_outstanding(
    session: Session, *, study: Study, version: str, user: Principal | None = None
) -> int:
    """How many taking part (at the user's sites, if a user is given) have not given
    `version` (for the console's summary)."""
    have = select(Consent.participant_id).where(
        Consent.study_id == study.id,
        Consent.version == version,
        Consent.participant_id.is_not(None),
    )
    query = (
        select(func.count())
        .select_from(Participant)
        .where(
            Participant.study_id == study.id,
            Participant.status.in_(TAKING_PART),
            Participant.id.not_in(have),
        )
    )
    sites = reachable_sites(user) if user is not None else None
    if sites is not None:
        query = query.where(Participant.site_id.in_(sites))
    return int(session.scalar(query) or 0)
