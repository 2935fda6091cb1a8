"""The outbox: enqueue in the caller's transaction; claim, then mark sent or failed.

A message is enqueued once (its `dedupe_key` is unique) and sent by one sender at a
time: a sender claims a batch of due messages with a lease, committed before it sends,
so concurrent senders (several processes) take different messages. A sender that dies
after sending and before marking leaves a message that is sent again once its lease
runs out: at least once, and exactly once unless a process crashes mid-send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.outbox.models import Channel, MessageKind, MessageStatus, OutboxMessage
from app.outbox.retry import next_attempt


def enqueue(
    session: Session,
    *,
    kind: MessageKind,
    dedupe_key: str,
    subject_id: int,
    now: datetime,
    study_id: int | None = None,
    site_id: int | None = None,
    participant_code: str | None = None,
    failed_because: str | None = None,
    channel: Channel = Channel.email,
) -> bool:
    """Add the message unless one with its key exists; whether it was added. With
    `failed_because`, it is recorded as failed at once (it can never be sent, such as to
    a participant without an email address), so that coordinators see it. `channel`:
    an email, or a text message (SPEC 11)."""
    insert: Any = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    added = session.execute(
        insert(OutboxMessage)
        .values(
            kind=kind,
            channel=channel,
            dedupe_key=dedupe_key,
            subject_id=subject_id,
            study_id=study_id,
            site_id=site_id,
            participant_code=participant_code,
            status=MessageStatus.failed if failed_because else MessageStatus.pending,
            last_error=failed_because[:500] if failed_because else None,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    ).first()
    return added is not None


def claim_due(
    session: Session, *, now: datetime, limit: int, lease: timedelta
) -> list[OutboxMessage]:
    """Take up to `limit` due messages for this sender until `now + lease` (longer than
    sending them all can take); commit before sending."""
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == MessageStatus.pending,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    messages = list(session.scalars(query))
    for message in messages:
        message.lease_until = now + lease
    session.flush()
    return messages


def mark_sent(
    session: Session, *, message_id: int, now: datetime, provider_ref: str | None = None
) -> bool:
    """Record a message handed over (a text: with the provider's id of it, which its
    delivery callbacks name); False when it was settled meanwhile (a STOP or a withdrawal
    skipped it while it was being sent): that stands, and the caller logs it."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == MessageStatus.pending)
        .values(
            status=MessageStatus.sent,
            sent_at=now,
            lease_until=None,
            last_error=None,
            provider_ref=provider_ref,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def postpone(session: Session, *, message_id: int, until: datetime) -> None:
    """Put a message back until `until` without counting a try (a text due in quiet
    hours)."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(lease_until=None, next_attempt_at=until)
    )


def mark_failed(session: Session, *, message: OutboxMessage, error: str, now: datetime) -> bool:
    """Record a failed try: again later, or failed for good after the last try; False
    when the message was settled meanwhile (skipped: it is not tried again)."""
    attempts = message.attempts + 1
    retry_at = next_attempt(attempts=attempts, now=now)
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.status == MessageStatus.pending)
        .values(
            attempts=attempts,
            lease_until=None,
            last_error=error[:500],
            status=MessageStatus.pending if retry_at else MessageStatus.failed,
            next_attempt_at=retry_at or now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def mark_given_up(
    session: Session, *, message_id: int, status: MessageStatus, reason: str, now: datetime
) -> None:
    """Settle a message without sending it: `skipped` (no longer needed) or `failed`
    (it can never be sent, such as to a participant without an email address)."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status=status, lease_until=None, last_error=reason[:500], next_attempt_at=now)
    )


# Their subject is a survey instance; each carries the survey's link, written when sent.
SURVEY_KINDS = (MessageKind.invitation, MessageKind.reminder, MessageKind.link_reissued)


def queued_about(session: Session, *, instance_id: int) -> bool:
    """Whether a message about this survey is queued and not yet sent: it will carry the
    survey's current link (written when sent), so another one would only repeat it. The
    caller holds the survey's row lock, as every writer of its messages does."""
    return (
        session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.kind.in_(SURVEY_KINDS),
                OutboxMessage.subject_id == instance_id,
                OutboxMessage.status == MessageStatus.pending,
            )
            .limit(1)
        )
        is not None
    )


def supersede(session: Session, *, instance_id: int, keep: Sequence[str], now: datetime) -> int:
    """Settle as skipped the queued messages about this survey other than those with a
    key in `keep` (the new link's email or text says all they would), unless a sender
    holds one now; how many."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.kind.in_(SURVEY_KINDS),
            OutboxMessage.subject_id == instance_id,
            OutboxMessage.status == MessageStatus.pending,
            OutboxMessage.dedupe_key.not_in(keep),
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
        )
        .values(
            status=MessageStatus.skipped,
            last_error="replaced by the message of the survey's new link",
            next_attempt_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def reissued_key(instance_id: int, issue: int) -> str:
    """The key of the email that carries link `issue` of a survey after a reissue."""
    return f"survey:{instance_id}:reissued:{issue}"


def link_sent(session: Session, *, instance_id: int, issue: int) -> bool:
    """Whether link `issue` of this survey was emailed after its reissue, or a message
    about the survey is queued (it will carry the current link): what the old link's
    page may then say ("we sent you a newer link")."""
    if queued_about(session, instance_id=instance_id):
        return True
    return (
        session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.dedupe_key == reissued_key(instance_id, issue),
                OutboxMessage.status == MessageStatus.sent,
            )
        )
        is not None
    )


def not_about(surveys: Select[Any] | None) -> ColumnElement[bool]:
    """Messages that are not invitations or reminders of these surveys (ids)."""
    if surveys is None:
        return true()
    return or_(OutboxMessage.kind.not_in(SURVEY_KINDS), OutboxMessage.subject_id.not_in(surveys))


def failed_messages(
    session: Session,
    *,
    study_id: int,
    site_ids: frozenset[int] | None,
    limit: int,
    hidden_surveys: Select[Any] | None = None,
) -> Sequence[OutboxMessage]:
    """Messages given up on, newest first (those of the given sites only, when given;
    none about the `hidden_surveys`, when given)."""
    query = select(OutboxMessage).where(
        OutboxMessage.study_id == study_id,
        OutboxMessage.status == MessageStatus.failed,
        not_about(hidden_surveys),
    )
    if site_ids is not None:
        query = query.where(OutboxMessage.site_id.in_(site_ids))
    return session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)).all()


def cancel_for_participant(
    session: Session, *, study_id: int, participant_code: str, reason: str, now: datetime
) -> int:
    """Settle as `skipped`, in the caller's transaction, every invitation and reminder
    still queued for this participant (a withdrawal, a death: every message stops at
    once). Alerts to the team about them stay. How many were stopped. A message a sender
    has already handed to the mail server cannot be called back."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.study_id == study_id,
            OutboxMessage.participant_code == participant_code,
            OutboxMessage.kind.in_(SURVEY_KINDS),
            OutboxMessage.status == MessageStatus.pending,
        )
        .values(
            status=MessageStatus.skipped,
            lease_until=None,
            last_error=reason[:500],
            next_attempt_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
