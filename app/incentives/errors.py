"""The ledger's errors, named for what happened (`app.api.errors` maps them by kind:
not found 404, conflicts 409, invalid input 422)."""

from __future__ import annotations

from app.errors import Conflict, NotFound


class EntryNotFound(NotFound):
    code, title = "incentive-not-found", "Incentive entry not found"


class EntryStateConflict(Conflict):
    """The step does not start from the entry's state (approving a void entry, issuing
    one twice): the answer names the state."""

    code, title = "incentive-state-conflict", "The entry is not in a state that allows this"

    def __init__(self, detail: str, *, state: str) -> None:
        super().__init__(detail)
        self.state = state
        self.fields = {"state": state}  # in the problem's answer


class NoGiftCard(Conflict):
    """No unassigned gift card of the entry's amount and currency is left."""

    code, title = "no-gift-card", "No gift card of this amount is left"


class NoIncentives(Conflict):
    """The study's definition pays no incentives."""

    code, title = "no-incentives", "This study pays no incentives"


class EntryHasNoCard(Conflict):
    """The entry was given no gift card (not issued, or paid through the vendor)."""

    code, title = "incentive-has-no-card", "The entry has no gift card"


class VendorFileNotFound(NotFound):
    """No entry at the caller's sites was issued in a vendor file at that time."""

    code, title = "vendor-file-not-found", "Vendor file not found"
