"""Text messages (SPEC 11): texting preferences, texts received, delivery statuses.

A participant is texted only with their consent to texting on record (when, and which
staff member took it: an IRB asks for both) and until they send STOP. A text received
is recorded once per provider id, matched to the participants at that number by the
keyed hashes of its forms, answered at once ("not watched around the clock" and the
crisis line; not STOP or START, and once an hour at most) and kept on the
coordinators' worklist, at the top, until one of them handles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import reachable_sites
from app.auth.principal import Principal
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.errors import FieldProblem, InvalidInput, NotFound
from app.outbox import service as outbox
from app.outbox.models import Channel, MessageKind, MessageStatus, OutboxMessage
from app.participants import service as participants
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.participants.phones import is_e164, stored_forms
from app.studies.models import Study
from app.studies.service import definition_of
from app.texting.models import ReplyKind, SmsReply
from app.texting.rules import reply_kind

CHANNELS = ("email", "sms", "both")
# Delivery statuses Twilio reports; once final, a late `sent` does not undo `delivered`.
DELIVERY = frozenset(
    {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered",
     "failed", "read", "canceled", "receiving", "received"}
)  # fmt: skip
FINAL = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})
UNDELIVERED = frozenset({"undelivered", "failed"})


class ReplyNotFound(NotFound):
    code, title = "reply-not-found", "No such text message"


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@dataclass(frozen=True)
class TextingChange:
    channel: str
    sms_consent: bool
    timezone: str | None


def set_texting(
    session: Session, *, study: Study, code: str, change: TextingChange, actor: Principal
) -> Participant:
    """Record the participant's channel, consent to texting and time zone (audited):
    consent given now is stamped with the time and the staff member; withdrawn, cleared."""
    if change.timezone is not None and change.timezone not in _zones():
        raise InvalidInput([FieldProblem(("timezone",), "not an IANA time zone")])
    if change.channel != "email" and not definition_of(study).sms.enabled:
        raise InvalidInput([FieldProblem(("channel",), "this study does not send texts")])
    now = audit.lock_chain_head(session).at  # before the participant's row: one lock order
    participant = participants.get_participant(
        session, study=study, code=code, user=actor, for_update=True
    )
    before = _texting_values(participant)
    participant.channel = change.channel
    participant.timezone = change.timezone
    if change.sms_consent and participant.sms_consent_at is None:
        participant.sms_consent_at, participant.sms_consent_by = now, actor.id
    elif not change.sms_consent:
        participant.sms_consent_at, participant.sms_consent_by = None, None
        stop_queued_texts(session, participant=participant, reason="consent to texting withdrawn")
    after = _texting_values(participant)
    if after != before:
        audit.record(
            session,
            AuditAction.participant_texting,
            actor=actor,
            entity_id=participant.code,
            study_id=study.id,
            changes={k: (before[k], after[k]) for k in after if before[k] != after[k]},
        )
    session.flush()
    return participant


def _texting_values(p: Participant) -> dict[str, str | bool | None]:
    return {
        "channel": p.channel,
        "sms_consent": p.sms_consent_at is not None,
        "timezone": p.timezone,
    }


def stop_queued_texts(session: Session, *, participant: Participant, reason: str) -> int:
    """Settle as skipped every text still queued to the participant; how many."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.study_id == participant.study_id,
            OutboxMessage.participant_code == participant.code,
            OutboxMessage.channel == Channel.sms,
            OutboxMessage.status == MessageStatus.pending,
        )
        .values(status=MessageStatus.skipped, lease_until=None, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Inbound:
    provider_ref: str
    from_number: str
    body: str


def receive(session: Session, *, text: Inbound, now: datetime) -> SmsReply | None:
    """Record a text received (once per provider id; None when seen before), from the
    participants whose number sent it (if any): see `record_reply`. The audit chain's
    head is locked first, so a webhook delivered twice at once is recorded once."""
    audit.lock_chain_head(session)
    if session.scalar(select(SmsReply.id).where(SmsReply.provider_ref == text.provider_ref)):
        return None
    sharing = senders(session, text.from_number)
    participant = sharing[0] if sharing else None
    return record_reply(session, text=text, participant=participant, now=now, sharing=sharing)


def record_reply(
    session: Session,
    *,
    text: Inbound,
    participant: Participant | None,
    now: datetime,
    sharing: Sequence[Participant] = (),
) -> SmsReply:
    """Record a text from this participant (None: an unknown number): its kind, STOP and
    START applied to everyone texted at that number (`sharing`, the participant
    included), an automatic answer queued for a reply or HELP (see `_answer`), audited
    (its kind, never its words). No text is marked handled by itself: START too waits
    on the worklist, since a person may mean more by it."""
    study = (
        session.get(Study, participant.study_id)
        if participant is not None
        else _texting_study(session)
    )
    kind = ReplyKind(reply_kind(text.body))
    within = definition_of(study).sms.respond_within_hours if study is not None else 24
    from_index = keyed_hash(sealing_keys_of(session), "phone", text.from_number)
    reply = SmsReply(
        provider_ref=text.provider_ref,
        study_id=study.id if study is not None else None,
        site_id=participant.site_id if participant is not None else None,
        participant_id=participant.id if participant is not None else None,
        participant_code=participant.code if participant is not None else None,
        from_number=text.from_number,
        from_index=from_index,
        body=text.body,
        kind=kind,
        received_at=now,
        respond_by=now + timedelta(hours=within),
    )
    answered = kind in (ReplyKind.reply, ReplyKind.help) and _may_answer(
        session, from_number=text.from_number, from_index=from_index, now=now
    )
    session.add(reply)
    session.flush()
    entity = participant.code if participant is not None else f"sms-reply-{reply.id}"
    study_id = study.id if study is not None else None
    audit.record(
        session,
        AuditAction.sms_received,
        actor=None,
        actor_label="participant" if participant is not None else "unknown number",
        entity_id=entity,
        study_id=study_id,
        changes={
            "kind": (None, kind.value),
            "reply": (None, reply.id),
            "answered": (None, answered),
        },
    )
    everyone = list(sharing) or ([participant] if participant is not None else [])
    for person in everyone:
        _apply_opt_out(session, participant=person, kind=kind, now=now)
    if answered:
        outbox.enqueue(
            session,
            kind=MessageKind.sms_auto_reply,
            channel=Channel.sms,
            dedupe_key=f"sms-reply:{reply.id}",
            subject_id=reply.id,
            now=now,
            study_id=study_id,
            site_id=reply.site_id,
            participant_code=reply.participant_code,
        )
    return reply


ANSWER_EVERY = timedelta(hours=1)  # at most one automatic answer per number in this time


def _may_answer(
    session: Session, *, from_number: str, from_index: str | None, now: datetime
) -> bool:
    """Whether a text from this number gets an automatic answer: only a real number (a
    short code or an alphanumeric sender cannot be answered, and two robots would
    answer each other), and one answer an hour at most: texts sent in a loop, by a
    person or a machine, are recorded and listed, not answered each time."""
    if from_index is None or not is_e164(from_number):
        return False
    recent = session.scalar(
        select(OutboxMessage.id)
        .join(SmsReply, SmsReply.id == OutboxMessage.subject_id)
        .where(
            OutboxMessage.kind == MessageKind.sms_auto_reply,
            SmsReply.from_index == from_index,
            SmsReply.received_at > now - ANSWER_EVERY,
        )
        .limit(1)
    )
    return recent is None


def senders(session: Session, number: str) -> list[Participant]:
    """The participants texted at this number (one person in two studies, or a shared
    phone), the one a reply is routed to first: the most recently enrolled still taking
    part (not withdrawn), else the most recently enrolled. A number is found in E.164 and
    in the forms numbers typed before this release were hashed in (digits only: national,
    or with the country code), so no data migration is needed."""
    keys = sealing_keys_of(session)
    forms = stored_forms(number) or ([number] if any(c.isdigit() for c in number) else [])
    indexes = {i for i in (keyed_hash(keys, "phone", f) for f in forms) if i is not None}
    if not indexes:
        return []
    found = session.scalars(
        select(Participant)
        .join(Contact, Contact.participant_id == Participant.id)
        .where(Contact.phone_index.in_(sorted(indexes)))
        .order_by(
            Participant.status == ParticipantStatus.withdrawn,
            Participant.enrolled_at.is_(None),
            Participant.enrolled_at.desc(),
            Participant.id.desc(),
        )
        .limit(MAX_SHARING)
    )
    return list(found)


MAX_SHARING = 50  # participants at one number: more is not a shared phone but bad data


def _texting_study(session: Session) -> Study | None:
    """The study that answers an unknown number: the oldest that texts (one number is
    normally one study's); none when no study texts."""
    for study in session.scalars(select(Study).order_by(Study.id)):
        if definition_of(study).sms.enabled:
            return study
    return None


def _apply_opt_out(
    session: Session, *, participant: Participant, kind: ReplyKind, now: datetime
) -> None:
    if kind is ReplyKind.stop and participant.sms_stopped_at is None:
        participant.sms_stopped_at = now
        skipped = stop_queued_texts(
            session, participant=participant, reason="the participant sent STOP"
        )
        audit.record(
            session,
            AuditAction.sms_stopped,
            actor=None,
            actor_label="participant",
            entity_id=participant.code,
            study_id=participant.study_id,
            changes={"sms_stopped": (False, True), "texts_skipped": (None, skipped)},
        )
    elif kind is ReplyKind.start and participant.sms_stopped_at is not None:
        participant.sms_stopped_at = None
        audit.record(
            session,
            AuditAction.participant_texting,
            actor=None,
            actor_label="participant",
            entity_id=participant.code,
            study_id=participant.study_id,
            changes={"sms_stopped": (True, False)},
        )


def record_delivery(
    session: Session, *, provider_ref: str, status: str, error_code: str | None, now: datetime
) -> bool:
    """Record a delivery status the provider reported for a text; whether a text of ours
    has that id. A text not delivered is shown as failed, like an email that bounced."""
    message = session.scalars(
        select(OutboxMessage).where(OutboxMessage.provider_ref == provider_ref).with_for_update()
    ).first()
    if message is None:
        return False
    if message.delivery in FINAL and status not in FINAL:
        return True  # a late `sent` after `delivered`
    message.delivery, message.delivery_at = status, now
    if status in UNDELIVERED:
        message.status = MessageStatus.failed
        code = f" (error {error_code})" if error_code else ""
        message.last_error = f"the provider reported the text {status}{code}"
    session.flush()
    return True


def replies(
    session: Session,
    *,
    study: Study,
    user: Principal,
    open_only: bool,
    after_id: int = 0,
    limit: int = 100,
) -> Sequence[SmsReply]:
    """Texts received at the user's sites (an admin: also from unknown numbers), those
    to answer first (earliest respond-by) first, then by id."""
    query = select(SmsReply).where(SmsReply.study_id == study.id, SmsReply.id > after_id)
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(SmsReply.site_id.in_(sites))
    if open_only:
        query = query.where(SmsReply.handled_at.is_(None))
    return session.scalars(query.order_by(SmsReply.id).limit(limit)).all()


def number_shown(reply: SmsReply, user: Principal) -> str | None:
    """The number an unknown sender texted from, for an admin (who sees every site) to
    call back; None for a participant's text (their record has it) and for others."""
    if reply.participant_id is None and reachable_sites(user) is None:
        return reply.from_number
    return None


def handle_reply(
    session: Session, *, study: Study, reply_id: int, note: str, actor: Principal
) -> SmsReply:
    """Mark a text received as dealt with, with a note (sealed; audited without it)."""
    now = audit.lock_chain_head(session).at  # before the reply's row: one lock order
    reply = session.scalars(
        select(SmsReply)
        .where(SmsReply.id == reply_id, SmsReply.study_id == study.id)
        .with_for_update()
    ).first()
    sites = reachable_sites(actor)
    if reply is None or (sites is not None and reply.site_id not in sites):
        raise ReplyNotFound(f"no text message {reply_id}")
    if reply.handled_at is not None:
        return reply  # handled by a colleague meanwhile: their note stands
    reply.handled_at, reply.handled_by, reply.handled_note = now, actor.id, note
    audit.record(
        session,
        AuditAction.sms_reply_handled,
        actor=actor,
        entity_id=reply.participant_code or f"sms-reply-{reply.id}",
        study_id=study.id,
        changes={"reply": (None, reply.id), "kind": (None, reply.kind)},
    )
    session.flush()
    return reply


def zone_of(participant: Participant, study: Study) -> ZoneInfo:
    """The participant's time zone, else the study's."""
    if participant.timezone:
        try:
            return ZoneInfo(participant.timezone)
        except (KeyError, ValueError):
            pass
    return definition_of(study).zone()
