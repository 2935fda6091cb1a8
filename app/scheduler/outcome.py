"""What became of the messages a pass handled (shared by emails and texts)."""

from __future__ import annotations

from dataclasses import dataclass

from app.outbox.models import Channel, MessageKind, MessageStatus


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
