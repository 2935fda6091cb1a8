"""Which surveys are owed a message now, enqueued in the outbox.

A survey open today and not completed or cancelled is owed its invitation once its
window opens, and reminder `k` once `reminders.after_days[k]` days have passed since.
`messages_enqueued` counts how many of those it was given; a pass enqueues only the
latest one owed (a scheduler that was down for a week sends one reminder, not three),
and an invitation first if none was sent yet.

A participant whose channel is `sms` gets each of these as a text instead of an email;
`both`, a text beside the email (its own key: one of each). Whether the text may go
(consent to texting, no STOP, a number) is decided when it is sent, so that a text
that cannot go is shown as failed with its reason rather than silently not queued.
One exception: a participant on `sms` alone who sent STOP, and who has an email
address, is emailed instead. STOP ends texts, not taking part, and their surveys would
otherwise reach them no way at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from app.outbox import service as outbox
from app.outbox.models import Channel, MessageKind
from app.participants.models import Contact, Participant
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import windows_sql
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date

BATCH = 1000


def owed_surveys(session: Session, *, study: Study, now: datetime, limit: int) -> list[Any]:
    """(id, site, participant code, messages enqueued, messages owed, channel) of the study's
    surveys owed a message at `now`, at most `limit`."""
    definition = definition_of(study)
    today = local_date(now, definition.zone())
    reminders = definition.reminders.after_days
    # Owed: 1 (the invitation) + every reminder whose day has come. The window is open
    # today, so every such day lies inside it.
    owed = windows_sql.messages_owed(SurveyInstance, today=today, reminder_days=reminders)
    query = (
        select(
            SurveyInstance.id,
            SurveyInstance.site_id,
            SurveyInstance.participant_code,
            SurveyInstance.messages_enqueued,
            owed,
            _channel(),
        )
        .join(Participant, Participant.id == SurveyInstance.participant_id)
        .outerjoin(Contact, Contact.participant_id == Participant.id)
        .where(
            SurveyInstance.study_id == study.id,
            windows_sql.is_open(SurveyInstance, today=today, now=now),
            SurveyInstance.messages_enqueued < owed,
        )
        .order_by(SurveyInstance.id)
        .limit(limit)
    )
    return list(session.execute(query).all())


def _channel() -> Any:
    """The participant's channel, but `email` for one texted only who sent STOP and has
    an email address."""
    return case(
        (
            (Participant.channel == "sms")
            & Participant.sms_stopped_at.is_not(None)
            & Contact.email_index.is_not(None),
            "email",
        ),
        else_=Participant.channel,
    )


def enqueue(session: Session, *, study: Study, now: datetime, rows: list[Any]) -> int:
    """Enqueue the message each of these surveys is owed (unless a concurrent pass did);
    how many were enqueued."""
    added = 0
    texting = definition_of(study).sms.enabled  # a study that does not text: emails only
    for instance_id, site_id, code, given, owed, channel in rows:
        claimed = session.execute(
            update(SurveyInstance)
            .where(SurveyInstance.id == instance_id, SurveyInstance.messages_enqueued == given)
            .values(messages_enqueued=owed)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another pass took it
        # The update holds the survey's row lock, as a resend or a reissue does: a
        # message about it still queued carries its current link, so this one is
        # counted as given without a second email.
        if outbox.queued_about(session, instance_id=instance_id):
            continue
        kind = MessageKind.invitation if given == 0 else MessageKind.reminder
        key = f"survey:{instance_id}:{owed - 1}"
        for way, dedupe_key in _channels(channel if texting else "email", key):
            added += outbox.enqueue(
                session,
                kind=kind,
                channel=way,
                dedupe_key=dedupe_key,
                subject_id=instance_id,
                now=now,
                study_id=study.id,
                site_id=site_id,
                participant_code=code,
            )
    return added


def _channels(preference: str, key: str) -> list[tuple[Channel, str]]:
    """The messages one survey message is, by the participant's channel."""
    text = (Channel.sms, f"{key}:sms")
    if preference == "sms":
        return [text]
    if preference == "both":
        return [(Channel.email, key), text]
    return [(Channel.email, key)]
