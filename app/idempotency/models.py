"""Idempotency keys of creating requests, with the response first given."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Whose key it is: `user:<id>` (the API) or `console:<id>` (a console form); a key
    # means something only to the user who sent it, whichever token they used.
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    response_media_type: Mapped[str | None] = mapped_column(String(100))
