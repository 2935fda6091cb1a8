"""Recording consents (SPEC 10): signed electronically through the participant pages,
or taken in person and recorded by staff; both in the caller's transaction.

An electronic consent stores the document's SHA-256 (what the signature binds to), the
typed name (sealed), the time and meaning of the signature, the quiz answers (sealed)
and the PDF copy (sealed) with its SHA-256. The audit record carries the hashes, the
version and the language, never the name: the trail is read by more people than the
consent. The copy is emailed through the outbox (`consent_copy`), whose sender reads
the address when it sends; with no address, the message is recorded as failed at once
so that coordinators see it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import column, select, table, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.consent import pdf
from app.consent.documents import document_sha256
from app.consent.models import Consent, ConsentMethod
from app.consent.quiz import mark
from app.consent.tokens import reconsent_token
from app.db.server_key import keys_of
from app.errors import Conflict, FieldProblem, InvalidInput, NotFound
from app.i18n import catalogs
from app.keys import Use
from app.outbox.models import MessageKind
from app.outbox.service import enqueue
from app.studies.definition import ConsentDocument
from app.studies.lifecycle import ensure_not_locked
from app.studies.models import Study
from app.studies.service import definition_in, definition_of

MEANING = "consent to take part"  # stored in English; shown translated
PARTICIPANT = "participant"  # the audit trail's actor for what a person signs themselves
NAME_MAX = 200
NO_EMAIL = "no email address to send the consent copy to"


def copy_key(consent_id: int) -> str:
    """The outbox key of the email that carries a consent's PDF copy."""
    return f"consent:{consent_id}:copy"


# Consent reads the participant's status without importing participants (a layer above).
_participants = table("participants", column("id"), column("status"))
_NOT_TAKING_PART = ("ineligible", "screened")
# A consent taken in person may have been recorded late, but not this long before the
# study existed in Trialdesk (a typo of the year, say).
_OLDEST_DAYS = 366


class NotTakingPart(Conflict):
    code, title = "not-taking-part", "This person is not taking part in the study"


class NotCountersignable(Conflict):
    code, title = "not-countersignable", "Only the current electronic consent is countersigned"


def _ensure_may_consent(session: Session, study: Study, participant_id: int | None) -> None:
    """Consents change until database lock, and only for people taking part."""
    ensure_not_locked(study.status)
    if participant_id is None:
        return
    status = session.scalar(
        select(_participants.c.status).where(_participants.c.id == participant_id)
    )
    if status is None or status in _NOT_TAKING_PART:
        raise NotTakingPart("only an enrolled participant gives consent")


def signature_mac(session: Session, consent: Consent) -> str:
    """A keyed hash binding the signature to its record (21 CFR 11.70): the consent's
    id, the printed name, the time, the meaning and the document's hash. It enters the
    audit trail, so a name swapped into another row, or a changed time, shows; the name
    itself never enters the trail (a keyed hash of a low-entropy name is not guessable
    without the server key)."""
    message = "|".join(
        (
            str(consent.id),
            consent.signed_name or "",
            consent.signed_at.isoformat(),
            consent.meaning,
            consent.document_sha256 or "",
        )
    )
    key = keys_of(session).derived(Use.audit_chain)
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sign_electronic(
    session: Session,
    *,
    study: Study,
    site_id: int,
    document: ConsentDocument,
    language: str,
    typed_name: str,
    quiz_answers: Mapping[str, str],
    quiz_attempts: int,
    applicant_id: int | None = None,
    participant_id: int | None = None,
    email: str | None = None,
    send_copy: bool = True,
    now: datetime,
) -> Consent:
    """Record an electronic signature of `document` in `language` by `typed_name`,
    with its PDF, audit record and emailed copy (unless `send_copy` is off: the caller
    queues it later with `queue_copy`); the new consent (flushed)."""
    name = " ".join(typed_name.split())
    problems = []
    if not name or len(name) > NAME_MAX:
        problems.append(
            FieldProblem(("typed_name",), f"type your name (1 to {NAME_MAX} characters)")
        )
    if language not in document.texts:
        problems.append(
            FieldProblem(("language",), f"version {document.version} has no {language!r} text")
        )
    if applicant_id is None and participant_id is None:
        problems.append(FieldProblem(("applicant_id",), "an applicant or a participant signs"))
    if problems:
        raise InvalidInput(problems)
    _ensure_may_consent(session, study, participant_id)
    text = document.texts[language]
    # Only the questions of the quiz are kept: nothing unbounded reaches the record.
    answers = {
        q.code: str(quiz_answers[q.code])[:64] for q in text.quiz if quiz_answers.get(q.code)
    }
    marked = mark(document, language, answers)
    sha = document_sha256(document, language)
    consent = Consent(
        study_id=study.id,
        site_id=site_id,
        participant_id=participant_id,
        applicant_id=applicant_id,
        version=document.version,
        language=language,
        method=ConsentMethod.electronic,
        document_sha256=sha,
        signed_name=name,
        signed_at=now,
        meaning=MEANING,
        quiz={"answers": answers, "attempts": quiz_attempts, "right": marked.right},
        created_at=now,
    )
    session.add(consent)
    session.flush()
    audit.record(
        session,
        AuditAction.consent_signed,
        actor=None,
        actor_label=PARTICIPANT,
        entity_id=consent.id,
        study_id=study.id,
        changes={
            "version": (None, consent.version),
            "language": (None, language),
            "document_sha256": (None, sha),
            "signature_mac": (None, signature_mac(session, consent)),
            "applicant_id": (None, applicant_id),
            "participant_id": (None, participant_id),
        },
    )
    if send_copy:
        queue_copy(session, consent=consent, email=email, now=now)
    return consent


def queue_copy(session: Session, *, consent: Consent, email: str | None, now: datetime) -> None:
    """Queue the email of the consent's PDF copy (once: its key is the consent's)."""
    enqueue(
        session,
        kind=MessageKind.consent_copy,
        dedupe_key=copy_key(consent.id),
        subject_id=consent.id,
        now=now,
        study_id=consent.study_id,
        site_id=consent.site_id,
        failed_because=None if email else NO_EMAIL,
    )


def ensure_pdf(session: Session, *, consent_id: int) -> Consent | None:
    """The consent with its PDF copy, made now if it has none yet (electronic consents
    only; None if there is no such consent). Making the PDF takes a few hundred
    milliseconds, so signing leaves it to the sender of the emailed copy (or to the
    first staff read): the signature, the document's hash and the manifest's facts are
    recorded at signing, and the PDF is made from them. The PDF's own hash enters the
    audit trail when it is made (`consent.pdf_made`). Two makers at once store one copy:
    the update only fills an empty column."""
    consent = session.get(Consent, consent_id)
    if consent is None or consent.method != ConsentMethod.electronic or consent.pdf is not None:
        return consent
    study = session.get_one(Study, consent.study_id)
    definition = definition_of(study)
    document = definition.consent.document(consent.version)
    if document is None or consent.signed_name is None:
        return consent
    signature = pdf.Signature(
        name=consent.signed_name,
        signed_at=consent.signed_at,
        zone=definition.timezone,
        meaning=consent.meaning,
        version=consent.version,
        language=consent.language,
        document_sha256=consent.document_sha256 or "",
        fda_regulated=definition.consent.fda_regulated,
    )
    answers = (consent.quiz or {}).get("answers", {})
    # The study's name in the language the person signed in (SPEC 10).
    title = definition_in(study, consent.language).shown_to_participants()
    with catalogs.speaking(consent.language):
        copy = pdf.render(document, signature, study_title=title, answers=answers)
    digest = hashlib.sha256(copy).hexdigest()
    stored = session.execute(
        update(Consent)
        .where(Consent.id == consent.id, Consent.pdf_sha256.is_(None))
        .values(pdf=copy, pdf_sha256=digest)
        .execution_options(synchronize_session=False)
    )
    if stored.rowcount == 1:  # type: ignore[attr-defined]
        audit.record(
            session,
            AuditAction.consent_pdf_made,
            actor=None,
            entity_id=consent.id,
            study_id=study.id,
            changes={
                "pdf_sha256": (None, digest),
                "document_sha256": (None, signature.document_sha256),
            },
        )
    session.refresh(consent)
    return consent


def attach_to_participant(session: Session, *, applicant_id: int, participant_id: int) -> None:
    """The applicant became this participant: their consents are the participant's."""
    session.execute(
        update(Consent)
        .where(Consent.applicant_id == applicant_id, Consent.participant_id.is_(None))
        .values(participant_id=participant_id)
        .execution_options(synchronize_session="fetch")
    )


# Consents read and recorded by staff.


class ConsentNotFound(NotFound):
    code, title = "consent-not-found", "No such consent"


class AlreadyCountersigned(Conflict):
    code, title = "already-countersigned", "The consent is countersigned already"


class CountersignNotUsed(Conflict):
    code, title = "countersign-not-used", "The study does not countersign consents"


@dataclass(frozen=True)
class ConsentLine:
    """A consent as staff see it, with its state: `signed` or `countersigned` (the
    participant's current consent, to the active version), `requires_reconsent` (the
    current consent, to an older version), `superseded` (an earlier one)."""

    consent: Consent
    state: str


def _rank(versions: Sequence[str], consent: Consent) -> tuple[int, int]:
    order = versions.index(consent.version) if consent.version in versions else -1
    return order, consent.id


def consents_of(session: Session, *, participant_id: int) -> list[Consent]:
    """The participant's consents, oldest first (by id)."""
    return list(
        session.scalars(
            select(Consent).where(Consent.participant_id == participant_id).order_by(Consent.id)
        )
    )


def latest_consent(session: Session, *, participant_id: int) -> Consent | None:
    """The participant's current consent: to the newest version they gave, the last
    recorded of those (an old version recorded late does not replace a newer one)."""
    consents = consents_of(session, participant_id=participant_id)
    if not consents:
        return None
    study = session.get_one(Study, consents[0].study_id)
    versions = definition_of(study).consent_versions
    return max(consents, key=lambda c: _rank(versions, c))


def lines(session: Session, *, study: Study, participant_id: int) -> list[ConsentLine]:
    """The participant's consents with their states, oldest first."""
    consents = consents_of(session, participant_id=participant_id)
    if not consents:
        return []
    definition = definition_of(study)
    versions = definition.consent_versions
    current = max(consents, key=lambda c: _rank(versions, c))
    # Re-consent is asked for only by an amendment, which adds a consent document: a
    # study without documents (consent taken in person) never asks for it.
    active = definition.consent.active()
    out = []
    for consent in consents:
        if consent is not current:
            state = "superseded"
        elif active is not None and consent.version != active.version:
            state = "requires_reconsent"
        else:
            state = "countersigned" if consent.countersigned_at else "signed"
        out.append(ConsentLine(consent, state))
    return out


def line_of(session: Session, *, study: Study, consent: Consent) -> ConsentLine:
    """One consent with its state among the participant's consents."""
    assert consent.participant_id is not None
    found = lines(session, study=study, participant_id=consent.participant_id)
    return next(line for line in found if line.consent.id == consent.id)


def get_consent(session: Session, *, participant_id: int, consent_id: int) -> Consent:
    consent = session.get(Consent, consent_id)
    if consent is None or consent.participant_id != participant_id:
        raise ConsentNotFound(f"no consent {consent_id} of this participant")
    return consent


def read_pdf(
    session: Session, *, study: Study, consent: Consent, participant_code: str, actor: Principal
) -> bytes:
    """The consent's PDF copy; the reading is audited (it holds the signed name)."""
    consent = ensure_pdf(session, consent_id=consent.id) or consent
    if consent.pdf is None:
        raise ConsentNotFound("this consent has no PDF (taken in person)")
    audit.record(
        session,
        AuditAction.consent_pdf_read,
        actor=actor,
        entity_id=consent.id,
        study_id=study.id,
        changes={"participant": (None, participant_code), "pdf_sha256": (None, consent.pdf_sha256)},
    )
    return consent.pdf


def countersign(session: Session, *, study: Study, consent: Consent, actor: Principal) -> Consent:
    """A coordinator's countersignature of an electronic consent, once (SPEC 10)."""
    if not definition_of(study).consent.countersign:
        raise CountersignNotUsed()
    _ensure_may_consent(session, study, consent.participant_id)
    current = (
        latest_consent(session, participant_id=consent.participant_id)
        if consent.participant_id
        else None
    )
    if consent.method != ConsentMethod.electronic or current is None or current.id != consent.id:
        raise NotCountersignable()
    now = audit.lock_chain_head(session).at
    claimed = session.execute(
        update(Consent)
        .where(Consent.id == consent.id, Consent.countersigned_at.is_(None))
        .values(countersigned_at=now, countersigned_by=actor.id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise AlreadyCountersigned()
    session.refresh(consent)
    audit.record(
        session,
        AuditAction.consent_countersigned,
        actor=actor,
        entity_id=consent.id,
        study_id=study.id,
        changes={
            "countersigned_at": (None, now.isoformat()),
            "document_sha256": (None, consent.document_sha256),
        },
    )
    return consent


def record_in_person(
    session: Session,
    *,
    study: Study,
    site_id: int,
    participant_id: int,
    participant_code: str,
    version: str,
    obtained_on: date | None,
    actor: Principal,
    now: datetime,
    note: str | None = None,
    at: tuple[str, ...] = (),
    enrolling: bool = False,
) -> Consent:
    """A consent taken in person, recorded by the staff member who obtained it; the day
    defaults to today in the study's zone and may not be in the future. `enrolling`:
    the consent of an enrollment, whose `participant.enrolled` record carries it (one
    audit record, not two, on the hot path; the participant is enrolled just now)."""
    if enrolling:
        ensure_not_locked(study.status)
    else:
        _ensure_may_consent(session, study, participant_id)
    definition = definition_of(study)
    today = now.astimezone(definition.zone()).date()
    day = obtained_on or today
    oldest = study.created_at.astimezone(definition.zone()).date() - timedelta(days=_OLDEST_DAYS)
    problems = []
    if day < oldest:
        problems.append(
            FieldProblem((*at, "obtained_on"), f"a day before {oldest.isoformat()}: check the year")
        )
    if version not in definition.consent_versions:
        problems.append(
            FieldProblem((*at, "version"), f"the study has no consent version {version!r}")
        )
    if day > today:
        problems.append(FieldProblem((*at, "obtained_on"), "a day in the future"))
    if problems:
        raise InvalidInput(problems)
    consent = Consent(
        study_id=study.id,
        site_id=site_id,
        participant_id=participant_id,
        version=version,
        language=definition.languages[0],
        method=ConsentMethod.in_person,
        signed_at=now,
        meaning=MEANING,
        obtained_on=day,
        obtained_by=actor.id,
        recorded_by=actor.id,
        created_at=now,
    )
    session.add(consent)
    session.flush()
    if enrolling:
        return consent
    audit.record(
        session,
        AuditAction.consent_recorded,
        actor=actor,
        entity_id=consent.id,
        study_id=study.id,
        reason=note,
        changes={
            "participant": (None, participant_code),
            "version": (None, version),
            "obtained_on": (None, day.isoformat()),
            "obtained_by": (None, actor.email),
        },
    )
    return consent


def reconsent_key(participant_id: int, version: str) -> str:
    """The outbox key of a participant's invitation to re-consent to `version`."""
    return f"reconsent:{participant_id}:{version}"


def invite_to_reconsent(
    session: Session,
    *,
    study: Study,
    participant_id: int,
    site_id: int,
    participant_code: str,
    has_email: bool,
    now: datetime,
) -> bool:
    """Queue the participant's invitation to sign the study's active version, unless
    their current consent is to it (or there is no consent document); whether one was
    queued now. Without an email address it is recorded as failed at once."""
    active = definition_of(study).consent.active()
    if active is None:
        return False
    latest = latest_consent(session, participant_id=participant_id)
    if latest is not None and latest.version == active.version:
        return False
    return enqueue(
        session,
        kind=MessageKind.reconsent,
        dedupe_key=reconsent_key(participant_id, active.version),
        subject_id=participant_id,
        now=now,
        study_id=study.id,
        site_id=site_id,
        participant_code=participant_code,
        failed_because=None if has_email else "the participant has no email address",
    )


def reconsent_link(session: Session, base_url: str, participant_id: int, version: str) -> str:
    """The participant's personal link to read and sign `version` (`/consent/{token}`)."""
    key = keys_of(session).derived(Use.survey_link)
    return f"{base_url}/consent/{reconsent_token(key, participant_id, version)}"


def note_current_version(session: Session, *, participant: Any) -> None:
    """Keep the participant's `consent_version` the version of their current consent."""
    latest = latest_consent(session, participant_id=participant.id)
    if latest is not None:
        participant.consent_version = latest.version
