"""The incentives ledger (SPEC 11): what completed surveys earned, and the gift cards
they are paid with. Amounts in cents of the study's currency."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import KEYED_HASH, SealedText


class EntryKind(StrEnum):
    completion = "completion"  # the timepoint's amount
    on_time_bonus = "on_time_bonus"


class EntryState(StrEnum):
    earned = "earned"  # the survey was completed
    held = "held"  # stopped for a fraud review (with a reason)
    approved = "approved"
    issued = "issued"  # a gift card given, or paid through the vendor's file
    redeemed = "redeemed"
    void = "void"  # not to be paid (the review found fraud), with a reason


class IssueMethod(StrEnum):
    gift_card = "gift_card"
    vendor = "vendor"  # a row of the payment vendor's CSV


class IncentiveEntry(Base):
    """One amount owed to a participant. Earned in the transaction that completes the
    survey: once per survey and kind, whatever retries or races."""

    __tablename__ = "incentive_entries"
    __table_args__ = (
        UniqueConstraint("instance_id", "kind"),
        Index("ix_incentive_entries_study_state", "study_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    participant_code: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[int] = mapped_column(ForeignKey("survey_instances.id"))
    timepoint: Mapped[str] = mapped_column(String(64))
    kind: Mapped[EntryKind] = mapped_column(String(16))
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[EntryState] = mapped_column(String(16))
    earned_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Why it was held or voided: free text about a person, sealed.
    reason: Mapped[str | None] = mapped_column(SealedText("incentive_entries.reason"))
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime | None]
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issue_method: Mapped[IssueMethod | None] = mapped_column(String(16))
    redeemed_at: Mapped[datetime | None]


class GiftCard(Base):
    """One gift card of an uploaded inventory. Its code is sealed, with a keyed hash
    beside it (no code loaded twice); `entry_id` is unique, so no card is ever issued
    for two entries, nor two cards for one, however many approvals race."""

    __tablename__ = "gift_cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    batch: Mapped[str] = mapped_column(String(64))  # the upload it came in
    code: Mapped[str] = mapped_column(SealedText("gift_cards.code"))
    code_index: Mapped[str | None] = mapped_column(
        String(64), unique=True, info={KEYED_HASH: ("gift_card", "code")}
    )
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    loaded_at: Mapped[datetime]
    loaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("incentive_entries.id"), unique=True)
