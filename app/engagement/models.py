"""Use of the intervention (SPEC 11): events loaded from the intervention's platforms.
They reveal the arm (only one arm has a bulletin board), so only roles that may see arms
ever read them, and a copy of the database must not tell whose they are (SPEC 6a): an
event names its participant by a keyed hash (`participant_key`, see `keys`), never by
id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class EngagementEvent(Base):
    """One event (`post`, `reply`, `login`, `email_read`, ...) of one participant, `count`
    times at `at`. Loaded once per study and `event_id`, however often the file is."""

    __tablename__ = "engagement_events"
    __table_args__ = (
        UniqueConstraint("study_id", "event_id"),
        Index("ix_engagement_events_participant", "study_id", "participant_key", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    # HMAC of "engagement|{study_id}|{participant_id}" under the research index key:
    # rebuilt by `trialdesk keys rotate` (`keys.rekey`).
    participant_key: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(default=1)
    imported_at: Mapped[datetime]
