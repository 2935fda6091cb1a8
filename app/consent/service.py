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
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.consent import pdf
from app.consent.documents import document_sha256
from app.consent.models import Consent, ConsentMethod
from app.consent.quiz import mark
from app.errors import FieldProblem, InvalidInput
from app.i18n import catalogs
from app.outbox.models import MessageKind
from app.outbox.service import enqueue
from app.studies.definition import ConsentDocument
from app.studies.models import Study
from app.studies.service import definition_of

MEANING = "consent to take part"  # stored in English; shown translated
PARTICIPANT = "participant"  # the audit trail's actor for what a person signs themselves
NAME_MAX = 200
NO_EMAIL = "no email address to send the consent copy to"


def copy_key(consent_id: int) -> str:
    """The outbox key of the email that carries a consent's PDF copy."""
    return f"consent:{consent_id}:copy"


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
    now: datetime,
) -> Consent:
    """Record an electronic signature of `document` in `language` by `typed_name`,
    with its PDF, audit record and emailed copy; the new consent (flushed)."""
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
    definition = definition_of(study)
    text = document.texts[language]
    # Only the questions of the quiz are kept: nothing unbounded reaches the record.
    answers = {
        q.code: str(quiz_answers[q.code])[:64] for q in text.quiz if quiz_answers.get(q.code)
    }
    marked = mark(document, language, answers)
    sha = document_sha256(document, language)
    signature = pdf.Signature(
        name=name,
        signed_at=now,
        zone=definition.timezone,
        meaning=MEANING,
        version=document.version,
        language=language,
        document_sha256=sha,
        fda_regulated=definition.consent.fda_regulated,
    )
    with catalogs.speaking(language):
        copy = pdf.render(
            document, signature, study_title=definition.shown_to_participants(), answers=answers
        )
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
        pdf=copy,
        pdf_sha256=hashlib.sha256(copy).hexdigest(),
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
            "pdf_sha256": (None, consent.pdf_sha256),
            "applicant_id": (None, applicant_id),
            "participant_id": (None, participant_id),
        },
    )
    enqueue(
        session,
        kind=MessageKind.consent_copy,
        dedupe_key=copy_key(consent.id),
        subject_id=consent.id,
        now=now,
        study_id=study.id,
        site_id=site_id,
        failed_because=None if email else NO_EMAIL,
    )
    return consent


def attach_to_participant(session: Session, *, applicant_id: int, participant_id: int) -> None:
    """The applicant became this participant: their consents are the participant's."""
    session.execute(
        update(Consent)
        .where(Consent.applicant_id == applicant_id, Consent.participant_id.is_(None))
        .values(participant_id=participant_id)
        .execution_options(synchronize_session="fetch")
    )
