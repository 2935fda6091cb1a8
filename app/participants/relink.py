"""A survey's new link, sent to its participant in the transaction that made it: by
email, or by text as their invitations go (see `channels_of`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.outbox import service as outbox
from app.outbox.models import Channel, MessageKind
from app.participants.models import Contact, Participant
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import service as surveys
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus

NO_EMAIL = "the participant has no email address"
NOT_OPEN = "the survey is not open yet: its invitation will carry the new link"


def channels_of(participant: Participant, study: Study) -> tuple[Channel, ...]:
    """How a reissued link or a resent invitation goes: as the participant's invitations
    do (`sms`, `both`) when they may be texted now (the study texts, consent on record,
    no STOP); by email otherwise, rather than as a text bound to fail."""
    texting = (
        definition_of(study).sms.enabled
        and participant.sms_consent_at is not None
        and participant.sms_stopped_at is None
    )
    if texting and participant.channel == "sms":
        return (Channel.sms,)
    if texting and participant.channel == "both":
        return (Channel.email, Channel.sms)
    return (Channel.email,)


def email_new_link(session: Session, *, study: Study, instance: SurveyInstance) -> str | None:
    """Queue the `link_reissued` message of an open survey (the caller holds its row
    lock): by email, by text (a key of its own) or both, as `channels_of` says; why it
    is not on its way, or None. Messages about it still queued are skipped: this one
    carries the link they would. Without an email address, the email is recorded as
    failed, for the worklist. A survey not open yet gets nothing now: its invitation
    will carry the new link, written when it is sent."""
    now = utcnow()
    if surveys.status_of(instance, definition=definition_of(study), now=now) is not (
        SurveyStatus.open
    ):
        return NOT_OPEN
    participant = session.get_one(Participant, instance.participant_id)
    ways = channels_of(participant, study)
    contact = session.get(Contact, instance.participant_id)
    missing = None if contact is not None and contact.email else NO_EMAIL
    key = outbox.reissued_key(instance.id, instance.issue)
    keys = {Channel.email: key, Channel.sms: f"{key}:sms"}
    for way in ways:
        outbox.enqueue(
            session,
            kind=MessageKind.link_reissued,
            channel=way,
            dedupe_key=keys[way],
            subject_id=instance.id,
            study_id=study.id,
            site_id=instance.site_id,
            participant_code=instance.participant_code,
            now=now,
            failed_because=missing if way is Channel.email else None,
        )
    if Channel.sms in ways or missing is None:
        outbox.supersede(session, instance_id=instance.id, keep=[keys[w] for w in ways], now=now)
        return None
    return missing
