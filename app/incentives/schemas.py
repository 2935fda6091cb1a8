"""What the ledger's API takes and answers. Rows carry the participant's code and the
amounts, never a name, an arm or a note about the person but the hold's reason."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.incentives.models import EntryKind, EntryState, IssueMethod

MAX_REASON = 2000

Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=MAX_REASON)
]


class EntryRead(BaseModel):
    """One amount owed to a participant, and where it is in its life."""

    id: int
    participant: str = Field(description="the participant's code")
    site: str = Field(description="the site's code")
    timepoint: str
    kind: EntryKind
    amount: str = Field(description="in the currency's units, to the cent: `25.00`")
    amount_cents: int
    currency: str
    state: EntryState
    earned_at: datetime
    approved_at: datetime | None
    issued_at: datetime | None
    issue_method: IssueMethod | None
    redeemed_at: datetime | None
    reason: str | None = Field(description="why it was held or voided")


class EntryList(BaseModel):
    items: list[EntryRead]
    next: str | None


class Issued(EntryRead):
    """An entry just issued with a gift card: the card's code, shown this once (for the
    coordinator to give the participant; a replay of the request answers null)."""

    shown_once: ClassVar[tuple[str, ...]] = ("gift_card_code",)

    gift_card_code: str | None


class CardShown(EntryRead):
    """An issued entry's gift-card code, shown again (a lost answer, a closed tab): not
    kept with the request's Idempotency-Key, so a replay answers null; ask again."""

    shown_once: ClassVar[tuple[str, ...]] = ("gift_card_code",)

    gift_card_code: str | None


class ReasonBody(BaseModel):
    """Why an entry is held for review, or voided."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class IssueBody(BaseModel):
    """How an approved entry is paid here: a gift card of its amount from the inventory
    (the payment vendor's entries are issued by `vendor-file`)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["gift_card"] = "gift_card"


class VendorFile(BaseModel):
    """The payment vendor's file: every approved entry at the caller's sites (at most
    `limit`), now issued."""

    entries: int
    total_cents: dict[str, int] = Field(description="by currency")
    issued_at: datetime = Field(
        description="the time its entries were issued: `vendor-file?issued_at=` makes it again"
    )
    filename: str
    sha256: str
    csv: str = Field(description="entry_id,participant,amount,currency,timepoint,kind")


class PastVendorFile(BaseModel):
    """A vendor file made before: its entries at the caller's sites share `issued_at`."""

    issued_at: datetime
    entries: int
    total_cents: dict[str, int] = Field(description="by currency")


class VendorFiles(BaseModel):
    """The latest vendor files at the caller's sites, newest first."""

    files: list[PastVendorFile]


class RejectedLine(BaseModel):
    line: int
    problem: str


class GiftCardsLoaded(BaseModel):
    batch: str
    loaded: int
    rejected: list[RejectedLine]


class CardCount(BaseModel):
    amount: str
    currency: str
    unassigned: int
    assigned: int


class GiftCardSummary(BaseModel):
    cards: list[CardCount]


class ParticipantYear(BaseModel):
    participant: str
    site: str
    paid: str
    paid_cents: int
    currency: str
    entries: int
    over_threshold: bool = Field(description="paid at least the tax-reporting threshold")


class Totals(BaseModel):
    """What each participant was paid (issued, then maybe redeemed) in a calendar year
    of the study's zone."""

    year: int
    threshold: str | None
    participants: list[ParticipantYear]


class StateSum(BaseModel):
    state: EntryState
    currency: str
    entries: int
    amount_cents: int


class Reconciliation(BaseModel):
    """Counts and sums per state, the gift cards loaded and assigned, and what should
    be zero: entries issued by gift card without a card, cards given to entries that
    were not issued."""

    states: list[StateSum]
    earned_cents: int = Field(description="every entry ever earned, void ones too")
    approved_cents: int = Field(description="approved, issued or redeemed")
    issued_cents: int = Field(description="issued or redeemed")
    redeemed_cents: int
    void_cents: int
    cards_loaded: int
    cards_assigned: int
    cards_loaded_cents: int
    cards_assigned_cents: int
    issued_without_card: int = Field(description="entries issued by gift card with no card: 0")
    cards_on_unissued_entries: int = Field(description="cards held by unpaid entries: 0")
