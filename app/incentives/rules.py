"""The incentives ledger's rules (pure): which state may follow which, when a survey
is on time, what a year's payments add up to, and how a gift-card inventory file reads.

An entry's life: earned → (held →) approved → issued → redeemed, or held → void. A
fraud review may hold an entry until it is paid (earned or approved); only a held entry
is voided, so every void went through a review with its reason. See docs/incentives.md.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from zoneinfo import ZoneInfo


class Step(StrEnum):
    """What is done to an entry; each names the states it may start from."""

    hold = "hold"
    approve = "approve"
    issue = "issue"
    redeem = "redeem"
    void = "void"


# The states (EntryState values) each step starts from, and the one it leads to.
TRANSITIONS: dict[Step, tuple[frozenset[str], str]] = {
    Step.hold: (frozenset({"earned", "approved"}), "held"),
    Step.approve: (frozenset({"earned", "held"}), "approved"),
    Step.issue: (frozenset({"approved"}), "issued"),
    Step.redeem: (frozenset({"issued"}), "redeemed"),
    Step.void: (frozenset({"held"}), "void"),
}
# States whose entries count as paid (the year's total, the tax flag).
PAID = ("issued", "redeemed")


def refusal(step: Step, state: str) -> str:
    """Why the step cannot be taken from this state, in words."""
    starts = " or ".join(sorted(TRANSITIONS[step][0]))
    return f"the entry is {state}: only an entry {starts} can be given '{step.value}'"


def cents(amount: Decimal) -> int:
    """An amount of the definition (to the cent) in cents."""
    return int((amount * 100).to_integral_value())


def on_time(*, opens_on: date, done_on: date, days: int) -> bool:
    """Done within `days` days of the window's opening (that last day included): the
    on-time bonus. Dates are the study's (or the interview's) calendar days."""
    return done_on <= opens_on + timedelta(days=days)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def year_bounds(year: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants a calendar year of the study's zone starts and ends (end excluded)."""
    start = datetime(year, 1, 1, tzinfo=zone)
    end = datetime(year + 1, 1, 1, tzinfo=zone)
    return start, end


def over_threshold(paid_cents: int, threshold: Decimal | None) -> bool:
    """Whether a year's payments reach the tax-reporting threshold (none: never)."""
    return threshold is not None and paid_cents >= cents(threshold)


# --- the gift-card inventory file ---------------------------------------------------------
MAX_CARD_FILE_BYTES = 1024 * 1024
MAX_CARD_ROWS = 10_000
MAX_CODE_LENGTH = 64
MAX_CARD_CENTS = 100_000 * 100  # as the definition's largest amount
CARD_COLUMNS = ("code", "amount", "currency")
CARD_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]*$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
AMOUNT = re.compile(r"^\d{1,6}(\.\d{1,2})?$")


@dataclass(frozen=True)
class CardRow:
    line: int  # in the file, the header being line 1
    code: str
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class CardFile:
    rows: list[CardRow]
    rejected: list[tuple[int, str]]  # (line, problem)


def read_card_file(text: str) -> CardFile:
    """The cards of an inventory file (`code,amount,currency`, a header first), each
    bad row with its line and problem; a file that cannot be read at all raises
    InvalidCardFile. Codes given twice in the file: the later ones are rejected."""
    if "\x00" in text:
        raise InvalidCardFile("the file holds a NUL character: not a CSV text file")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != list(CARD_COLUMNS):
            raise InvalidCardFile("the first line must be the header code,amount,currency")
        rows: list[CardRow] = []
        rejected: list[tuple[int, str]] = []
        seen: set[str] = set()
        for number, cells in enumerate(reader, start=2):
            if number - 1 > MAX_CARD_ROWS:
                raise InvalidCardFile(f"at most {MAX_CARD_ROWS} cards in one file")
            if not any(c.strip() for c in cells):
                continue  # a blank line
            row, problem = _card(number, cells)
            if row is not None and row.code in seen:
                row, problem = None, "this code is given twice in the file"
            if row is None:
                rejected.append((number, problem))
            else:
                seen.add(row.code)
                rows.append(row)
    except csv.Error as exc:
        raise InvalidCardFile(f"not a CSV file: {exc}"[:200]) from None
    return CardFile(rows, rejected)


def _card(line: int, cells: list[str]) -> tuple[CardRow | None, str]:
    if len(cells) != len(CARD_COLUMNS):
        return None, f"{len(cells)} values: give code,amount,currency"
    code, amount, currency = (c.strip() for c in cells)
    if not code or len(code) > MAX_CODE_LENGTH or not CARD_CODE.match(code):
        return None, f"the code: 1 to {MAX_CODE_LENGTH} letters, digits, spaces, . _ / -"
    if not AMOUNT.match(amount):
        return None, "the amount: a number like 25 or 25.00"
    try:
        value = cents(Decimal(amount))
    except InvalidOperation:  # pragma: no cover - the pattern already says so
        return None, "the amount: a number like 25 or 25.00"
    if not 0 < value <= MAX_CARD_CENTS:
        return None, "the amount: more than 0 and at most 100000"
    if not CURRENCY.match(currency):
        return None, "the currency: three capital letters, like USD"
    return CardRow(line, code, value, currency), ""


class InvalidCardFile(ValueError):
    """The inventory file as a whole cannot be read."""
