"""Strata (one lockable row each) and the append-only allocation ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base
from app.db.sealed import SealedText


class Stratum(Base):
    """A stratum's position in its sequence; its row is locked while a slot is taken."""

    __tablename__ = "strata"
    __table_args__ = (UniqueConstraint("study_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    key: Mapped[str] = mapped_column(String(500))
    allocated: Mapped[int] = mapped_column(default=0)
    last_block: Mapped[int] = mapped_column(default=0)
    last_block_size: Mapped[int] = mapped_column(default=0)
    last_position: Mapped[int] = mapped_column(default=0)


class Allocation(Base):
    """One slot given to one participant. Never updated or deleted (database triggers)."""

    __tablename__ = "allocations"
    __table_args__ = (
        UniqueConstraint("stratum_id", "sequence"),
        UniqueConstraint("stratum_id", "block", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    stratum_id: Mapped[int] = mapped_column(ForeignKey("strata.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), unique=True)
    # The ledger names whom each slot went to, so it can be read (and checked) alone.
    participant_code: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int]
    # Null only for a study randomized from an allocation table that gives no blocks.
    block: Mapped[int | None]
    block_size: Mapped[int | None]
    position: Mapped[int | None]
    arm: Mapped[str] = mapped_column(SealedText("allocations.arm"))  # never in plain at rest
    randomized_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    randomized_at: Mapped[datetime]

    stratum: Mapped[Stratum] = relationship(lazy="joined")


class AllocationTableRow(Base):
    """A row of an allocation list prepared by an independent statistician."""

    __tablename__ = "allocation_table_rows"
    __table_args__ = (UniqueConstraint("study_id", "stratum", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    stratum: Mapped[str] = mapped_column(String(500))
    sequence: Mapped[int]
    arm: Mapped[str] = mapped_column(SealedText("allocation_table_rows.arm"))  # the sequence
    block: Mapped[int | None]
    block_size: Mapped[int | None]
    position: Mapped[int | None]
