"""A survey's new link, emailed to its participant in the transaction that made it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.outbox import service as outbox
from app.outbox.models import MessageKind
from app.participants.models import Contact
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import service as surveys
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus

NO_EMAIL = "the participant has no email address"
NOT_OPEN = "the survey is not open yet: its invitation will carry the new link"


def email_new_link(session: Session, *, study: Study, instance: SurveyInstance) -> str | None:
    """Queue the `link_reissued` email of an open survey (the caller holds its row lock);
    why it is not on its way, or None. Messages about it still queued are skipped: this
    one carries the link they would. Without an email address, the message is recorded
    as failed, for the worklist. A survey not open yet gets nothing now: its invitation
    will carry the new link, written when it is sent."""
    now = utcnow()
    if surveys.status_of(instance, definition=definition_of(study), now=now) is not (
        SurveyStatus.open
    ):
        return NOT_OPEN
    contact = session.get(Contact, instance.participant_id)
    missing = None if contact is not None and contact.email else NO_EMAIL
    key = outbox.reissued_key(instance.id, instance.issue)
    outbox.enqueue(
        session,
        kind=MessageKind.link_reissued,
        dedupe_key=key,
        subject_id=instance.id,
        study_id=study.id,
        site_id=instance.site_id,
        participant_code=instance.participant_code,
        now=now,
        failed_because=missing,
    )
    if missing is None:
        outbox.supersede(session, instance_id=instance.id, keep=key, now=now)
    return missing
