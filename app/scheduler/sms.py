"""Sending a text message from the outbox (SPEC 11): written now, from what the database
holds now, like an email; then handed to the provider and the outcome recorded.

A text that may not go (no consent to texting on record, STOP, no mobile number) fails
at once with the reason, shown to coordinators like a failed email. One due in quiet
hours (the participant's time zone, else the study's) waits until they end, without
counting a try. The automatic answer to a participant's text is not held for quiet
hours: they have just written, and it carries the crisis line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.config import Settings
from app.db.engine import Database
from app.i18n import catalogs
from app.outbox import service as outbox
from app.outbox.models import MessageKind, MessageStatus, OutboxMessage
from app.participants.models import Contact, Participant
from app.participants.phones import can_text, to_e164
from app.scheduler import texts
from app.scheduler.outcome import Claimed, NotSent, Sent, give_up
from app.studies.models import Study
from app.studies.service import definition_in, definition_of
from app.surveys import service as surveys
from app.surveys.language import language_of
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus
from app.texting.models import SmsReply
from app.texting.provider import Text, TextFailed, TextRefused, TextSender
from app.texting.rules import quiet_until
from app.texting.service import zone_of

log = logging.getLogger("trialdesk.scheduler")


@dataclass(frozen=True)
class Postponed:
    """Due in quiet hours: sent once they end."""

    until: datetime


def send_text(
    db: Database,
    sender: TextSender,
    settings: Settings,
    message: Claimed,
    *,
    now: datetime,
    done: Sent,
) -> None:
    """Write, send and record one text of the outbox."""
    outcome = _write(db, settings, message, now=now)
    if isinstance(outcome, Postponed):
        with db.begin() as session:
            outbox.postpone(session, message_id=message.id, until=outcome.until)
        done.postponed += 1
        return
    if isinstance(outcome, NotSent):
        give_up(db, message.id, outcome, now=now, done=done)
        return
    with db.session(write=False) as session:
        settled = _settled_meanwhile(session, message)
    if settled is not None:  # a STOP or a withdrawal came while the text was written
        with db.begin() as session:
            outbox.mark_given_up(
                session,
                message_id=message.id,
                status=MessageStatus.skipped,
                reason=settled,
                now=now,
            )
        done.skipped += 1
        return
    try:
        ref = sender.send(outcome)
    except TextRefused as error:
        with db.begin() as session:
            outbox.mark_given_up(
                session,
                message_id=message.id,
                status=MessageStatus.failed,
                reason=f"the provider refused it: {error}",
                now=now,
            )
        done.failed += 1
        log.warning("text %s refused by the provider", message.id)
        return
    except TextFailed as error:
        with db.begin() as session:
            row = session.get_one(OutboxMessage, message.id)
            outbox.mark_failed(session, message=row, error=str(error), now=now)
        done.failed += 1
        log.warning("text %s not sent (try %s)", message.id, message.attempts + 1)
        return
    with db.begin() as session:
        recorded = outbox.mark_sent(session, message_id=message.id, now=now, provider_ref=ref)
    if not recorded:
        log.warning("text %s was sent after it was settled (a STOP or a withdrawal)", message.id)
    done.sent += 1


def _settled_meanwhile(session: Session, message: Claimed) -> str | None:
    """Why a text written a moment ago must not go after all (the outbox row no longer
    pending, the participant's consent withdrawn or a STOP received), read again just
    before it is handed over; None when it may go."""
    row = session.get(OutboxMessage, message.id)
    if row is None or row.status != MessageStatus.pending:
        return "settled while it was being written"
    if message.kind is MessageKind.sms_auto_reply:
        return None  # an answer to someone who just wrote (STOP and START get none)
    instance = session.get(SurveyInstance, message.subject_id)
    participant = session.get(Participant, instance.participant_id) if instance else None
    if participant is None or participant.sms_stopped_at is not None:
        return "the participant sent STOP: no more texts"
    if participant.sms_consent_at is None:
        return "consent to texting withdrawn"
    return None


def _write(
    db: Database, settings: Settings, message: Claimed, *, now: datetime
) -> Text | NotSent | Postponed:
    try:
        with db.session(write=False) as session:
            return compose_text(session, settings, message, now=now)
    except Exception as error:
        log.exception("text %s cannot be written", message.id)
        return NotSent(MessageStatus.failed, f"cannot be written: {type(error).__name__}")


def compose_text(
    session: Session, settings: Settings, message: Claimed, *, now: datetime
) -> Text | NotSent | Postponed:
    """The text the message is, written now; or why it is not sent (yet)."""
    key = f"trialdesk-outbox-{message.id}"
    if message.kind is MessageKind.sms_auto_reply:
        return _auto_reply(session, message.subject_id, key=key)
    if message.kind not in (
        MessageKind.invitation,
        MessageKind.reminder,
        MessageKind.link_reissued,
    ):
        return NotSent(MessageStatus.failed, f"a {message.kind} is not sent as a text")
    instance = session.get(SurveyInstance, message.subject_id)
    if instance is None:
        return NotSent(MessageStatus.failed, "the survey no longer exists")
    study = session.get_one(Study, instance.study_id)
    definition = definition_of(study)
    current = surveys.status_of(instance, definition=definition, now=now)
    if current is not SurveyStatus.open:
        return NotSent(MessageStatus.skipped, f"the survey is {current}")
    participant = session.get_one(Participant, instance.participant_id)
    contact = session.get(Contact, instance.participant_id)
    number = _textable(participant, contact, region=definition.sms.region)
    if isinstance(number, NotSent):
        return number
    quiet = definition.sms.quiet_hours
    until = quiet_until(now, zone=zone_of(participant, study), start=quiet.start, end=quiet.end)
    if until is not None:
        return Postponed(until)
    language = language_of(session, participant_id=participant.id, definition=definition)
    shown = definition_in(study, language)
    with catalogs.speaking(language):
        body = texts.survey_text(
            message.kind,
            sms=shown.sms,
            link=f"{settings.base_url}/s/{surveys.link_token(session, instance)}",
            first_name=texts.first_name_of(contact.name if contact else None),
        )
    return Text(to=number, body=body, key=key)


def _textable(participant: Participant, contact: Contact | None, *, region: str) -> str | NotSent:
    """The participant's mobile number in E.164, or why they may not be texted."""
    if participant.sms_stopped_at is not None:
        return NotSent(MessageStatus.failed, "the participant sent STOP: no more texts")
    if participant.sms_consent_at is None:
        return NotSent(MessageStatus.failed, "no consent to texting on record")
    if contact is None or not contact.phone:
        return NotSent(MessageStatus.failed, "the participant has no phone number")
    try:
        number = to_e164(contact.phone, region=region)
    except ValueError:
        return NotSent(MessageStatus.failed, "the participant's phone number is not valid")
    if not can_text(number):
        return NotSent(MessageStatus.failed, "the participant's number is not a mobile")
    return number


def _auto_reply(session: Session, reply_id: int, *, key: str) -> Text | NotSent:
    reply = session.get(SmsReply, reply_id)
    if reply is None:
        return NotSent(MessageStatus.failed, "the text it answers no longer exists")
    study = session.get(Study, reply.study_id) if reply.study_id is not None else None
    language = None
    if study is not None and reply.participant_id is not None:
        definition = definition_of(study)
        language = language_of(session, participant_id=reply.participant_id, definition=definition)
    shown = definition_in(study, language) if study is not None else None
    with catalogs.speaking(language):
        body = texts.auto_reply(
            crisis_line=shown.sms.crisis_line if shown else None,
            support=shown.support_text if shown else None,
            help_asked=reply.kind == "help",
        )
    return Text(to=reply.from_number, body=body, key=key)
