"""Re-consent (`/consent/{token}`): a participant invited after an amendment reads and
signs the study's active consent version on the same pages an applicant does. The link
is derived from the server key, the participant and the version (`consent.tokens`), so
nothing is stored and the link of a replaced version leads nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep, send_soon
from app.consent import service as consents
from app.consent.models import Consent
from app.consent.quiz import mark
from app.consent.tokens import is_token_of, participant_of
from app.db.base import utcnow
from app.db.server_key import keys_of
from app.join import forms
from app.join.consent_steps import (
    DOCUMENT_FIELD,
    Signer,
    attempts_of,
    bound,
    check_page,
    go,
    personal,
    quiz_answers,
    quiz_page,
    read_other,
    section_page,
    sign_page,
    sign_problems,
    updated,
)
from app.join.pages import page_router
from app.join.service import InvitationEnded, Opened, UnknownApplicant
from app.keys import Use
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.studies import service as studies
from app.studies.lifecycle import StudyStatus
from app.studies.models import Study
from app.web.forms import FormDep

router = page_router("/consent")


TAKING_PART = (ParticipantStatus.enrolled, ParticipantStatus.randomized)


@dataclass(frozen=True)
class Invited:
    participant: Participant
    signer: Signer  # without contact details: a forwarded link must not show them
    email: str | None  # where the signed copy goes
    signed: bool  # the active version is signed already


def _invited(session: Session, token: str, *, for_update: bool = False) -> Invited:
    """The participant this link invites to sign the study's active version. A link
    nobody made is "page not found"; a real one that no longer applies (its version
    replaced, the participant not taking part, the study locked) "no longer valid"."""
    participant_id = participant_of(token)
    query = select(Participant).where(Participant.id == (participant_id or 0))
    locked = query.with_for_update(of=Participant) if for_update else query
    participant = session.scalars(locked).first()
    if participant is None:
        raise UnknownApplicant("no invitation has this link")
    study = session.get_one(Study, participant.study_id)
    definition = studies.definition_of(study)
    document = definition.consent.active()
    key = keys_of(session).derived(Use.survey_link)
    made_for = next(
        (
            version
            for version in definition.consent_versions
            if is_token_of(key, token, participant_id=participant.id, version=version)
        ),
        None,
    )
    if made_for is None:
        raise UnknownApplicant("no invitation has this link")
    if (
        document is None
        or made_for != document.version
        or participant.status not in TAKING_PART
        or participant.withdrawn_at is not None
        or study.status == StudyStatus.locked
    ):
        raise InvitationEnded("this invitation no longer applies")
    language = participant.language or definition.languages[0]
    if language not in document.texts:
        language = next(iter(document.texts))
    contact = session.get(Contact, participant.id)
    signed = session.scalar(
        select(Consent.id)
        .where(Consent.participant_id == participant.id, Consent.version == document.version)
        .limit(1)
    )
    base = f"/consent/{token}"
    signer = Signer(
        base=base,
        opened=Opened(study, definition, [participant.site]),
        language=language,
        document=document,
        name=contact.name if contact else None,
        email=None,
        phone=None,
        before_first=None,
        contact_link=None,
    )
    return Invited(participant, signer, contact.email if contact else None, signed is not None)


@router.get("/{token}")
def start(token: str, session: ReadSessionDep) -> Response:
    invited = _invited(session, token)
    return go(f"/consent/{token}/{'done' if invited.signed else 'consent/1'}")


@router.get("/{token}/consent/{number}")
def show_section(request: Request, token: str, number: str, session: ReadSessionDep) -> Response:
    invited = _invited(session, token)
    if invited.signed:
        return go(f"/consent/{token}/done")
    return section_page(request, invited.signer, number[:4])


@router.get("/{token}/quiz")
def show_quiz(request: Request, token: str, session: ReadSessionDep) -> Response:
    invited = _invited(session, token)
    if invited.signed:
        return go(f"/consent/{token}/done")
    if read_other(invited.signer, request.query_params.get(DOCUMENT_FIELD)):
        return updated(invited.signer)
    return quiz_page(request, invited.signer, answers={})


@router.post("/{token}/quiz")
def answer_quiz(request: Request, token: str, session: ReadSessionDep, form: FormDep) -> Response:
    """Mark the quiz (attempts counted in the form: nothing is stored until signing)."""
    invited = _invited(session, token)
    if invited.signed:
        return go(f"/consent/{token}/done")
    signer = invited.signer
    if read_other(signer, forms.value(form, DOCUMENT_FIELD) or None):
        return updated(signer)
    answers = quiz_answers(signer, form)
    marked = mark(signer.document, signer.language, answers)
    attempts = attempts_of(form) + (0 if marked.unanswered else 1)
    if not marked.passed or marked.unanswered:
        return quiz_page(request, signer, answers=answers, marked=marked, attempts=attempts)
    return check_page(request, signer, answers, attempts)


@router.get("/{token}/check")
def show_check(request: Request, token: str, session: ReadSessionDep) -> Response:
    invited = _invited(session, token)
    if invited.signed:
        return go(f"/consent/{token}/done")
    if read_other(invited.signer, request.query_params.get(DOCUMENT_FIELD)):
        return updated(invited.signer)
    if invited.signer.text.quiz:
        return go(f"/consent/{token}/quiz")
    return check_page(request, invited.signer, {})


@router.post("/{token}/sign", dependencies=[Depends(send_soon)])  # the emailed copy
def sign(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    """The declaration and signature; signing records the consent for the participant."""
    invited = _invited(session, token, for_update=True)
    if invited.signed:
        return go(f"/consent/{token}/done")
    signer = invited.signer
    if not bound(signer, form):  # the document changed since it was shown: read it again
        return updated(signer)
    answers = quiz_answers(signer, form)
    if not mark(signer.document, signer.language, answers).passed:
        return go(f"/consent/{token}/quiz")
    signing = form.get("step") == ["sign"]
    problems = sign_problems(signer, form) if signing else []
    if signing and not problems:
        participant = invited.participant
        consents.sign_electronic(
            session,
            study=signer.opened.study,
            site_id=participant.site_id,
            document=signer.document,
            language=signer.language,
            typed_name=form["typed_name"][0],
            quiz_answers=answers,
            quiz_attempts=max(attempts_of(form), 1 if signer.text.quiz else 0),
            participant_id=participant.id,
            email=invited.email,
            now=utcnow(),
        )
        consents.note_current_version(session, participant=participant)
        return go(f"/consent/{token}/done")
    return sign_page(request, signer, form, answers, problems, attempts_of(form))


@router.get("/{token}/done")
def done(request: Request, token: str, session: ReadSessionDep) -> Response:
    invited = _invited(session, token)
    if not invited.signed:
        return go(f"/consent/{token}/consent/1")
    return personal(
        request,
        "join/done.html",
        {"baseline": None, "emailed": invited.email is not None, "reconsent": True},
        opened=invited.signer.opened,
        language=invited.signer.language,
    )
