"""Sign-ups through the public link (SPEC 10): screening, contact details, the consent
steps, and enrollment once consent is signed.

A sign-up that trips a check (`checks.Hold`) goes on exactly like any other, and is
held for a coordinator when it would be enrolled: what the applicant sees never tells
them a check fired. A bot's screening (honeypot, too fast) is held before anything is
counted, eligible or not, so it is not "assessed for eligibility" in CONSORT unless a
coordinator accepts it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.consent import service as consent
from app.consent.models import Consent
from app.consent.quiz import ATTEMPTS_BEFORE_CALL, Marked, mark
from app.db.sealed import keyed_hash
from app.db.server_key import keys_of, sealing_keys_of
from app.errors import NotFound, TooManyAttempts
from app.join import checks
from app.join.checks import Hold
from app.join.models import Applicant, ApplicantState
from app.keys import Use
from app.participants import service as participants
from app.participants.models import Contact, Participant
from app.participants.phones import stored_forms, to_e164
from app.participants.screening import screen as check_screening
from app.studies import service as studies
from app.studies.definition import ConsentDocument, StudyDefinition
from app.studies.lifecycle import StudyStatus
from app.studies.models import Site, Study
from app.surveys import service as surveys

PARTICIPANT = "participant"  # the audit trail's actor for what a person did themselves


class JoinClosed(NotFound):
    code, title = "join-closed", "This study does not take sign-ups here"


class TooManySignUps(TooManyAttempts):
    code, title = "too-many-sign-ups", "Too many sign-ups; try again later"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, retry_after=600)


class UnknownApplicant(NotFound):
    code, title = "unknown-applicant", "No sign-up has this link"


class InvitationEnded(NotFound):
    """A re-consent link that was real and no longer is: its version was replaced, the
    participant left, or the study is locked."""

    code, title = "invitation-ended", "This link is no longer valid"


@dataclass(frozen=True)
class Opened:
    """A study whose public link is open, and the sites that take sign-ups through it."""

    study: Study
    definition: StudyDefinition
    sites: list[Site]

    def in_language(self, language: str) -> StudyDefinition:
        """The definition with the study's own texts in `language` (cached per study,
        revision and language: `studies.service.definition_in`)."""
        return studies.definition_in(self.study, language)


def open_study(session: Session, *, slug: str, site: str | None = None) -> Opened:
    """The study behind `/join/{slug}` (and `/{site}`), if it takes sign-ups there."""
    study = session.scalars(select(Study).where(Study.slug == slug[:100])).first()
    if study is None or study.status != StudyStatus.enrolling:
        raise JoinClosed(f"no open sign-up for {slug!r}")
    definition = studies.definition_of(study)
    if not definition.join.enabled or definition.consent.active() is None:
        raise JoinClosed(f"no open sign-up for {slug!r}")
    listed = definition.join.sites
    sites = [s for s in study.sites if listed is None or s.code in listed]
    if site is not None:
        sites = [s for s in sites if s.code == site]
    if not sites:
        raise JoinClosed(f"no open sign-up for {slug!r} at {site!r}")
    return Opened(study, definition, sites)


def new_token() -> str:
    """An applicant's secret link: 256 random bits (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def stamp_key(session: Session) -> bytes:
    """The key of the screening page's signed stamp (a stable key: a page shown before a
    key rotation still sends)."""
    return keys_of(session).derived(Use.survey_link)


@dataclass(frozen=True)
class ScreeningForm:
    site: Site
    language: str
    answers: dict[str, bool]
    strata: dict[str, str]
    honeypot: str
    stamp: str


@dataclass(frozen=True)
class Screened:
    eligible: bool  # as the applicant is told: eligible goes on to contact details
    token: str | None  # the applicant's link, when they go on


def screen(
    session: Session, *, opened: Opened, form: ScreeningForm, address: str, now: datetime
) -> Screened:
    """Record a screening: an eligible person (or any held sign-up) becomes an applicant;
    an ineligible person an ineligible participant row, counted in CONSORT."""
    study, definition = opened.study, opened.definition
    join = definition.join
    address_hash = checks.address_hash(keys_of(session).derived(Use.research_index), address)
    since = now - checks.RATE_WINDOW
    recent = select(func.count(Applicant.id)).where(
        Applicant.study_id == study.id, Applicant.created_at >= since
    )
    verdict = checks.rate(
        from_address=session.scalar(recent.where(Applicant.address_hash == address_hash)) or 0,
        in_study=session.scalar(recent) or 0,
        per_address=join.per_address_per_hour,
        per_study=join.per_study_per_hour,
    )
    if verdict.refuse:
        raise TooManySignUps("too many sign-ups in the last hour")
    shown = checks.shown_at(stamp_key(session), slug=study.slug, given=form.stamp, now=now)
    holds = [
        *checks.bot_holds(
            honeypot=form.honeypot, shown=shown, now=now, min_seconds=join.min_seconds
        ),
        *verdict.holds,
    ]
    version = definition.consent.active()
    assert version is not None
    outcome = check_screening(
        definition,
        answers=form.answers,
        consent_version=version.version,
        levels=form.strata,
        has_contact=True,
    ).ineligible_reasons
    token = new_token()
    applicant = Applicant(
        study_id=study.id,
        site_id=form.site.id,
        token_hash=token_hash(token),
        state=ApplicantState.contact,
        language=form.language,
        screening=dict(form.answers),
        strata=dict(form.strata) or None,
        ineligible_reasons=outcome or None,
        address_hash=address_hash,
        hold_reasons=[str(h) for h in holds] or None,
        quiz_attempts=0,
        needs_call=False,
        created_at=now,
        updated_at=now,
    )
    if not outcome and _rescreened(session, study=study, address_hash=address_hash, since=since):
        applicant.hold_reasons = [*(applicant.hold_reasons or []), str(Hold.rescreened)]
    bot = any(h in checks.BOT_HOLDS for h in holds)
    if outcome and not bot:
        participant = enroll_ineligible(
            session, applicant=applicant, study=study, site=form.site, actor_label=PARTICIPANT
        )
        applicant.state = ApplicantState.ineligible
        applicant.participant_id = participant.id
        applicant.hold_reasons = None
    elif outcome:
        applicant.state = ApplicantState.held  # a bot's screening: not assessed
    session.add(applicant)
    session.flush()
    audit.record(
        session,
        AuditAction.applicant_screened,
        actor=None,
        actor_label=PARTICIPANT,
        entity_id=f"applicant-{applicant.id}",
        study_id=study.id,
        changes={
            "site": (None, form.site.code),
            "language": (None, form.language),
            "screening": (None, applicant.screening),
            "eligible": (None, not outcome),
            "hold_reasons": (None, applicant.hold_reasons),
        },
    )
    if outcome:
        return Screened(False, None)
    return Screened(True, token)


def _rescreened(session: Session, *, study: Study, address_hash: str, since: datetime) -> bool:
    """Whether the address screened ineligible in the study within the hour: an eligible
    screening now may be the same person changing answers to get in."""
    found = session.scalar(
        select(Applicant.id)
        .where(
            Applicant.study_id == study.id,
            Applicant.address_hash == address_hash,
            Applicant.created_at >= since,
            Applicant.state == ApplicantState.ineligible,
        )
        .limit(1)
    )
    return found is not None


def enroll_ineligible(
    session: Session, *, applicant: Applicant, study: Study, site: Site, actor_label: str
) -> Participant:
    """The ineligible participant row a screening that failed a criterion is counted by."""
    return participants.enroll_self(
        session,
        study=study,
        site=site.code,
        screening=applicant.screening,
        strata=applicant.strata,
        consent_version=None,
        contact=None,
        joined=participants.SelfEnrolled(
            applicant.language, needs_verification=False, actor_label=actor_label
        ),
    )


def find(session: Session, *, token: str, for_update: bool = False) -> Applicant:
    """The applicant whose link this is."""
    if len(token) > 64:
        raise UnknownApplicant("no sign-up has this link")
    query = select(Applicant).where(Applicant.token_hash == token_hash(token))
    if for_update:
        query = query.with_for_update()
    applicant = session.scalars(query).first()
    if applicant is None or applicant.state in (
        ApplicantState.ineligible,
        ApplicantState.rejected,
    ):
        raise UnknownApplicant("no sign-up has this link")
    return applicant


@dataclass(frozen=True)
class ContactForm:
    name: str
    email: str
    phone: str | None
    date_of_birth: str | None


def save_contact(
    session: Session, *, applicant: Applicant, form: ContactForm, now: datetime
) -> None:
    """Keep the contact details (sealed) and their keyed hashes; a repeat of another
    participant's or sign-up's email or phone is a hold reason, nothing more."""
    keys = sealing_keys_of(session)
    email_index = keyed_hash(keys, "email", form.email)
    phones = _phone_indexes(session, applicant, form.phone)
    phone_index = phones[0] if phones else None
    applicant.name, applicant.email, applicant.phone = form.name, form.email, form.phone
    applicant.date_of_birth = form.date_of_birth
    applicant.email_index, applicant.phone_index = email_index, phone_index
    duplicates = checks.duplicate_holds(
        email_taken=_taken(session, applicant, "email", [email_index] if email_index else []),
        phone_taken=_taken(session, applicant, "phone", phones),
    )
    kept = [
        h
        for h in applicant.hold_reasons or []
        if h not in (Hold.duplicate_email, Hold.duplicate_phone)
    ]
    applicant.hold_reasons = [*kept, *(str(h) for h in duplicates)] or None
    before = applicant.state
    if applicant.state == ApplicantState.contact:
        applicant.state = ApplicantState.consent
    applicant.updated_at = now
    audit.record(
        session,
        AuditAction.applicant_contact,
        actor=None,
        actor_label=PARTICIPANT,
        entity_id=f"applicant-{applicant.id}",
        study_id=applicant.study_id,
        # The details themselves stay out of the trail: their keyed hashes say what changed.
        changes={
            "state": (before, applicant.state),
            "email_index": (None, email_index),
            "phone_index": (None, phone_index),
            "hold_reasons": (None, applicant.hold_reasons),
        },
    )


def _phone_indexes(session: Session, applicant: Applicant, phone: str | None) -> list[str]:
    """The keyed hashes a sign-up's phone is kept and looked up by: first its E.164 form
    (read as dialled in the study's `sms.region`), as participants' numbers are kept
    now, else the form as typed when it does not parse; then the forms numbers kept
    before were hashed in (as typed: their digits, national or with the country code),
    so that a person enrolled as 215-555-0123 who signs up again is held."""
    if phone is None or not phone.strip():
        return []
    keys = sealing_keys_of(session)
    region = studies.definition_of(session.get_one(Study, applicant.study_id)).sms.region
    try:
        e164 = to_e164(phone, region=region)
    except ValueError:
        forms = [phone]
    else:
        forms = [e164, *stored_forms(e164), phone]
    found = (keyed_hash(keys, "phone", f) for f in forms)
    return list(dict.fromkeys(i for i in found if i is not None))


def _taken(session: Session, applicant: Applicant, kind: str, indexes: list[str]) -> bool:
    if not indexes:
        return False
    column = Contact.email_index if kind == "email" else Contact.phone_index
    other = Applicant.email_index if kind == "email" else Applicant.phone_index
    participant = session.scalar(
        select(Contact.participant_id)
        .join(Participant, Participant.id == Contact.participant_id)
        .where(Participant.study_id == applicant.study_id, column.in_(indexes))
        .limit(1)
    )
    if participant is not None:
        return True
    return (
        session.scalar(
            select(Applicant.id)
            .where(
                Applicant.study_id == applicant.study_id,
                Applicant.id != applicant.id,
                other.in_(indexes),
            )
            .limit(1)
        )
        is not None
    )


def consent_document(definition: StudyDefinition) -> ConsentDocument:
    document = definition.consent.active()
    assert document is not None
    return document


def answer_quiz(
    session: Session,
    *,
    applicant: Applicant,
    document: ConsentDocument,
    answers: Mapping[str, str],
    now: datetime,
) -> Marked:
    """Mark an attempt (an attempt with questions left out is not counted); failing
    `ATTEMPTS_BEFORE_CALL` times flags the applicant for a call (they may still retry)."""
    marked = mark(document, applicant.language, answers)
    if marked.unanswered:
        return marked
    applicant.quiz_attempts += 1
    if not marked.passed and applicant.quiz_attempts >= ATTEMPTS_BEFORE_CALL:
        applicant.needs_call = True
    applicant.updated_at = now
    return marked


def sign(
    session: Session,
    *,
    applicant: Applicant,
    opened: Opened,
    typed_name: str,
    quiz_answers: Mapping[str, str],
    now: datetime,
) -> Participant | None:
    """Record the signed consent, then enroll the applicant, or hold them for a
    coordinator when a check fired; the participant when enrolled."""
    study = opened.study
    document = consent_document(opened.definition)
    consent.sign_electronic(
        session,
        study=study,
        site_id=applicant.site_id,
        document=document,
        language=applicant.language,
        typed_name=typed_name,
        quiz_answers=dict(quiz_answers),
        quiz_attempts=applicant.quiz_attempts,
        applicant_id=applicant.id,
        email=applicant.email,
        # A program's sign-up (honeypot, too fast) gets no copy until a coordinator
        # accepts it: else the form would email a PDF to any address typed in.
        send_copy=not held_as_bot(applicant),
        now=now,
    )
    applicant.updated_at = now
    if applicant.hold_reasons:
        applicant.state = ApplicantState.held
        audit.record(
            session,
            AuditAction.applicant_held,
            actor=None,
            actor_label=PARTICIPANT,
            entity_id=f"applicant-{applicant.id}",
            study_id=study.id,
            changes={
                "state": (ApplicantState.consent, ApplicantState.held),
                "hold_reasons": (None, applicant.hold_reasons),
            },
        )
        return None
    return enroll(session, applicant=applicant, study=study, actor_label=PARTICIPANT)


def held_as_bot(applicant: Applicant) -> bool:
    """Whether the sign-up shows a program's signs (its consent copy waits for review)."""
    return any(h in checks.BOT_HOLDS for h in applicant.hold_reasons or [])


def enroll(
    session: Session, *, applicant: Applicant, study: Study, actor_label: str
) -> Participant:
    """Make the applicant who signed a participant (`source` join), with the consent
    they signed attached."""
    definition = studies.definition_of(study)
    site = session.get_one(Site, applicant.site_id)
    document = consent_document(definition)
    participant = participants.enroll_self(
        session,
        study=study,
        site=site.code,
        screening=applicant.screening,
        strata=applicant.strata,
        consent_version=_signed_version(session, applicant, document),
        contact=(applicant.name or "", applicant.email, applicant.phone),
        joined=participants.SelfEnrolled(
            applicant.language,
            needs_verification=definition.join.verify_before_randomization,
            actor_label=actor_label,
        ),
    )
    consent.attach_to_participant(session, applicant_id=applicant.id, participant_id=participant.id)
    applicant.state = ApplicantState.enrolled
    applicant.participant_id = participant.id
    # Signed a version an amendment has replaced since (while held for review, say):
    # invited to the new one like everyone taking part was at the amendment.
    consent.invite_to_reconsent(
        session,
        study=study,
        participant_id=participant.id,
        site_id=site.id,
        participant_code=participant.code,
        has_email=bool(applicant.email),
        now=participant.enrolled_at or participant.screened_at,
    )
    return participant


def _signed_version(session: Session, applicant: Applicant, document: ConsentDocument) -> str:
    """The version the applicant signed (the active one when they signed)."""
    version = session.scalar(
        select(Consent.version)
        .where(Consent.applicant_id == applicant.id)
        .order_by(Consent.id.desc())
        .limit(1)
    )
    return version or document.version


def baseline_token(session: Session, participant_id: int) -> str | None:
    """The personal link of the participant's first survey, while it is open."""
    for instance in surveys.instances_of(session, participant_id=participant_id):
        return surveys.link_token(session, instance)
    return None
