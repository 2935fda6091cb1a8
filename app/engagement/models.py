"""Use of the intervention (SPEC 11): events loaded from the intervention's platforms.
They reveal the arm (only one arm has a bulletin board), so only roles that may see arms
ever read them."""

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
        Index("ix_engagement_events_participant", "participant_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    event_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(default=1)
    imported_at: Mapped[datetime]
