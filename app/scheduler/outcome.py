"""What became of the messages a pass handled (shared by emails and texts)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from app.db.engine import Database
from app.outbox import service as outbox
from app.outbox.models import Channel, MessageKind, MessageStatus

log = logging.getLogger("trialdesk.scheduler")


@dataclass(frozen=True)
class Claimed:
    """A message a sender took from the outbox."""

    id: int
    kind: MessageKind
    subject_id: int
    attempts: int
    channel: Channel = Channel.email


@dataclass(frozen=True)
class NotSent:
    """Why a message is settled without sending: `skipped` or `failed`."""

    status: MessageStatus
    reason: str


@dataclass
class Sent:
    sent: int = 0
    failed: int = 0  # this try failed (retried later, or given up)
    skipped: int = 0
    postponed: int = 0  # texts due in quiet hours, waiting until they end


def give_up(db: Database, message_id: int, outcome: NotSent, *, now: datetime, done: Sent) -> None:
    """Settle a message that is not to be sent (skipped, or failed for good with its
    reason, which coordinators see), and count it."""
    with db.begin() as session:
        outbox.mark_given_up(
            session, message_id=message_id, status=outcome.status, reason=outcome.reason, now=now
        )
    if outcome.status is MessageStatus.skipped:
        done.skipped += 1
    else:
        done.failed += 1
        log.warning("message %s cannot be sent: %s", message_id, outcome.reason)
