"""Sending what the outbox holds: claim a batch (a lease, committed), write each email
from what the database holds now, hand it over, record the outcome.

A message no longer needed when its turn comes (a reminder for a survey completed
since) is skipped; one that can never be sent (no address) fails at once; one the
server refuses is tried again with backoff, then shown as failed. Either way the
coordinators see it on their worklist: nothing is dropped silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.auth import service as auth
from app.auth.models import SignInLink, User, UserSite
from app.auth.principal import Role
from app.config import Settings
from app.consent import service as consent_service
from app.db.base import utcnow
from app.db.engine import Database
from app.db.server_key import keys_of
from app.i18n import catalogs
from app.keys import Use
from app.outbox import service as outbox
from app.outbox.models import Channel, MessageKind, MessageStatus, OutboxMessage
from app.participants.models import Contact
from app.safety.labels import event_label
from app.safety.models import AdverseEvent
from app.scheduler import consent_letters, join_letters, mail, sms
from app.scheduler.mail import Letter, PartlySent, SendFailed, Transport
from app.scheduler.outcome import Claimed, NotSent, Sent, give_up
from app.studies.models import Site, Study
from app.studies.service import definition_in, definition_of
from app.surveys import service as surveys
from app.surveys.language import language_of
from app.surveys.models import Alert, SurveyInstance
from app.surveys.names import survey_name
from app.surveys.scheduling import SurveyStatus
from app.texting.provider import TextSender, text_sender_for
from app.users.sign_in import sign_in_url

log = logging.getLogger("trialdesk.scheduler")

BATCH = 20  # messages claimed at once


def dispatch(
    db: Database,
    transport: Transport,
    *,
    now: datetime,
    stop: threading.Event | None = None,
    texts: TextSender | None = None,
) -> Sent:
    """Send every message due, batch by batch, until none is left (or `stop`). The
    clock runs on from `now` (the pass's time, maybe given for a test or a replay): each
    batch is claimed, and each message written, at the time it really is, so that a
    survey answered while the pass runs gets no reminder and no lease starts old."""
    settings = db.settings
    started = utcnow()
    texter = texts or text_sender_for(settings)

    def clock() -> datetime:
        return now + (utcnow() - started)

    # Longer than a batch can take, however slow the server: no other sender takes a
    # message while this one may still be sending it.
    lease = timedelta(seconds=BATCH * settings.smtp_timeout_s * 4 + 60)
    done = Sent()
    try:
        while stop is None or not stop.is_set():
            with db.begin() as session:
                claimed = [
                    Claimed(m.id, MessageKind(m.kind), m.subject_id, m.attempts, m.channel)
                    for m in outbox.claim_due(session, now=clock(), limit=BATCH, lease=lease)
                ]
            if not claimed:
                break
            for message in claimed:
                if message.channel == Channel.sms:
                    sms.send_text(db, texter, settings, message, now=clock(), done=done)
                else:
                    _send_one(db, transport, settings, message, now=clock(), done=done)
    finally:
        transport.close()
        texter.close()
    return done


def _send_one(
    db: Database,
    transport: Transport,
    settings: Settings,
    message: Claimed,
    *,
    now: datetime,
    done: Sent,
) -> None:
    if message.kind is MessageKind.consent_copy:
        _make_consent_pdf(db, message.subject_id)
    outcome = _write(db, settings, message, now=now)
    if isinstance(outcome, NotSent):
        give_up(db, message.id, outcome, now=now, done=done)
        return
    try:
        transport.send(outcome)
    except PartlySent as error:
        with db.begin() as session:
            outbox.mark_given_up(
                session,
                message_id=message.id,
                status=MessageStatus.failed,
                reason=str(error),
                now=now,
            )
        done.failed += 1
        log.warning("message %s partly refused: %s", message.id, error)
        return
    except SendFailed as error:
        with db.begin() as session:
            row = session.get_one(OutboxMessage, message.id)
            outbox.mark_failed(session, message=row, error=str(error), now=now)
        done.failed += 1
        log.warning("message %s not sent (try %s): %s", message.id, message.attempts + 1, error)
        return
    with db.begin() as session:
        recorded = outbox.mark_sent(session, message_id=message.id, now=now)
    if not recorded:
        log.warning("message %s was sent after it was settled meanwhile", message.id)
    done.sent += 1


def _make_consent_pdf(db: Database, consent_id: int) -> None:
    """The PDF the copy carries, made (and its hash audited) before the email is
    written; a fault here leaves the email to say it cannot be written."""
    try:
        with db.begin() as session:
            consent_service.ensure_pdf(session, consent_id=consent_id)
    except Exception:
        log.exception("the PDF of consent %s cannot be made", consent_id)


def _write(
    db: Database, settings: Settings, message: Claimed, *, now: datetime
) -> EmailMessage | NotSent:
    """The email, ready to send; or why not. One message that cannot be written (a
    fault, not a rule) is given up with its reason and stops no other."""
    try:
        with db.session(write=False) as session:
            letter = compose(session, settings, message, now=now)
        if isinstance(letter, NotSent):
            return letter
        key = f"trialdesk-outbox-{message.id}"
        return mail.email_message(letter, sender=settings.smtp_from, now=now, key=key)
    except Exception as error:
        log.exception("message %s cannot be written", message.id)
        return NotSent(MessageStatus.failed, f"cannot be written: {type(error).__name__}")


def compose(
    session: Session, settings: Settings, message: Claimed, *, now: datetime
) -> Letter | NotSent:
    """The email the message is, written now; or why it is not to be sent."""
    if message.kind is MessageKind.alert:
        return _alert_letter(session, settings, message.subject_id)
    if message.kind is MessageKind.sign_in:
        return _sign_in_letter(session, settings, message.subject_id, now=now)
    if message.kind is MessageKind.safety_event:
        return _safety_event_letter(session, settings, message.subject_id)
    if message.kind in _CONSENT_WRITERS:
        written = _CONSENT_WRITERS[message.kind](session, settings, message.subject_id)
        return written if isinstance(written, Letter) else NotSent(*written)
    if message.kind is MessageKind.applicant_accepted:
        letter = join_letters.accepted_letter(session, settings, message.subject_id)
        return letter if isinstance(letter, Letter) else NotSent(MessageStatus.failed, letter)
    instance = session.get(SurveyInstance, message.subject_id)
    if instance is None:
        return NotSent(MessageStatus.failed, "the survey no longer exists")
    study = session.get_one(Study, instance.study_id)
    definition = definition_of(study)
    current = surveys.status_of(instance, definition=definition, now=now)
    if current is not SurveyStatus.open:
        return NotSent(MessageStatus.skipped, f"the survey is {current}")
    contact = session.get(Contact, instance.participant_id)
    if contact is None or not contact.email:
        return NotSent(MessageStatus.failed, "the participant has no email address")
    write = _WRITERS[message.kind]
    # In the participant's language, with the study's texts in it (SPEC 10).
    language = language_of(session, participant_id=instance.participant_id, definition=definition)
    shown = definition_in(study, language)
    with catalogs.speaking(language):
        subject, body = write(
            # Never the study's title: a subject line shows on lock screens (SPEC 6b).
            study_title=shown.shown_to_participants(),
            survey_name=survey_name(instance.timepoint),
            link=f"{settings.base_url}/s/{surveys.link_token(session, instance)}",
            closes_on=instance.closes_on,
            support=shown.support_text,
        )
    return Letter([contact.email], subject, body)


# The consent emails (SPEC 10), in the person's language: the signed PDF, re-consent.
_CONSENT_WRITERS = {
    MessageKind.consent_copy: consent_letters.consent_copy,
    MessageKind.reconsent: consent_letters.reconsent,
}

# What a survey's message says, by kind; the link in each is the survey's current one.
_WRITERS = {
    MessageKind.invitation: mail.invitation,
    MessageKind.reminder: mail.reminder,
    MessageKind.link_reissued: mail.new_link,
}


def _sign_in_letter(
    session: Session, settings: Settings, link_id: int, *, now: datetime
) -> Letter | NotSent:
    link = session.get(SignInLink, link_id)
    if link is None:
        return NotSent(MessageStatus.failed, "the sign-in link no longer exists")
    if link.used_at is not None or link.expires_at <= now:
        return NotSent(MessageStatus.skipped, "the sign-in link was used or has expired")
    user = session.get_one(User, link.user_id)
    if user.deactivated_at is not None:
        return NotSent(MessageStatus.skipped, "the user was deactivated")
    key = keys_of(session).derived(Use.console)
    token = auth.sign_in_token(key, link_id=link.id, salt=link.salt)
    subject, body = mail.sign_in(
        link=sign_in_url(settings.base_url, token), minutes=settings.sign_in_link_minutes
    )
    return Letter([user.email], subject, body)


def _alert_letter(session: Session, settings: Settings, alert_id: int) -> Letter | NotSent:
    alert = session.get(Alert, alert_id)
    if alert is None:
        return NotSent(MessageStatus.failed, "the alert no longer exists")
    study = session.get_one(Study, alert.study_id)
    site = session.get_one(Site, alert.site_id)
    coordinators = session.scalars(
        select(User.email)
        .join(UserSite, UserSite.user_id == User.id)
        .where(
            UserSite.site_id == site.id,
            User.role == Role.coordinator,
            User.deactivated_at.is_(None),
        )
        .order_by(User.id)
    ).all()
    if not coordinators:
        return NotSent(MessageStatus.failed, f"site {site.code} has no active coordinator")
    subject, body = mail.alert(
        study_title=definition_of(study).title,
        participant=alert.participant_code,
        site=site.code,
        link=f"{settings.base_url}/console/studies/{study.slug}/participants/"
        f"{alert.participant_code}",
    )
    return Letter(list(coordinators), subject, body)


def _safety_event_letter(session: Session, settings: Settings, event_id: int) -> Letter | NotSent:
    event = session.get(AdverseEvent, event_id)
    if event is None:
        return NotSent(MessageStatus.failed, "the adverse event no longer exists")
    study = session.get_one(Study, event.study_id)
    site = session.get_one(Site, event.site_id)
    definition = definition_of(study)
    recipients = safety_recipients(session, study=study, contacts=definition.safety.contacts)
    if not recipients:
        return NotSent(
            MessageStatus.failed, "the study has no safety contact, safety reviewer or admin"
        )
    # Sent even if a follow-up made the event non-serious before its turn came: the
    # safety officer is told what was recorded, and the page shows what it is now.
    subject, body = mail.safety_event(
        study_title=definition.title,
        event=event_label(event.number),
        site=site.code,
        link=f"{settings.base_url}/console/studies/{study.slug}/events/{event.id}",
    )
    return Letter(recipients, subject, body)


def safety_recipients(session: Session, *, study: Study, contacts: Sequence[str]) -> list[str]:
    """Who is emailed about a study's serious adverse events: its definition's safety
    contacts, then every active safety reviewer who reaches the study (one with no site
    reaches every study, as the role's scope says; one given sites, those sites'
    studies), each address once whatever its case; with none, every active admin."""
    study_sites = select(Site.id).where(Site.study_id == study.id)
    assigned = select(UserSite.user_id).where(UserSite.user_id == User.id)
    reviewers = session.scalars(
        select(User.email)
        .where(
            User.role == Role.safety_reviewer,
            User.deactivated_at.is_(None),
            or_(
                ~assigned.exists(),
                assigned.where(UserSite.site_id.in_(study_sites)).exists(),
            ),
        )
        .order_by(User.id)
    ).all()
    chosen = _unique([*contacts, *reviewers])
    if chosen:
        return chosen
    admins = session.scalars(
        select(User.email)
        .where(User.role == Role.admin, User.deactivated_at.is_(None))
        .order_by(User.id)
    ).all()
    return _unique(admins)


def _unique(addresses: Sequence[str]) -> list[str]:
    """Each address once (compared without case), in the order first given."""
    seen: dict[str, str] = {}
    for address in addresses:
        seen.setdefault(address.casefold(), address)
    return list(seen.values())
