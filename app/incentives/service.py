"""The incentives ledger's use cases (SPEC 11): list, hold, approve, issue (a gift card
from the inventory, or the payment vendor's file), redeem, void; the inventory (the
year's totals and the reconciliation: `reports`).

Every state change is one `UPDATE ... WHERE id = ? AND state IN (...)`: two coordinators
approving or issuing one entry at once get one change and one 409 naming the state. A
gift card is taken by one `UPDATE gift_cards SET entry_id = ? WHERE id = (the first
free card of that amount, FOR UPDATE SKIP LOCKED on PostgreSQL)`; `entry_id` is unique,
so no card is ever given twice. Entries carry the participant's code and site: nothing
here reads participants or surveys (the ledger sits below them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import reachable_sites
from app.auth.principal import Principal
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.errors import FieldProblem, InvalidInput
from app.incentives import rules
from app.incentives.earning import entity
from app.incentives.errors import (
    EntryHasNoCard,
    EntryNotFound,
    EntryStateConflict,
    NoGiftCard,
    NoIncentives,
)
from app.incentives.models import EntryState, GiftCard, IncentiveEntry, IssueMethod
from app.incentives.rules import Step
from app.incentives.schemas import (
    CardCount,
    CardShown,
    EntryRead,
    GiftCardsLoaded,
    GiftCardSummary,
    Issued,
    RejectedLine,
)
from app.studies.models import Study
from app.studies.service import definition_of

_HASH_CHUNK = 500

_AUDIT_ACTION = {
    Step.hold: AuditAction.incentive_held,
    Step.approve: AuditAction.incentive_approved,
    Step.issue: AuditAction.incentive_issued,
    Step.redeem: AuditAction.incentive_redeemed,
    Step.void: AuditAction.incentive_voided,
}


# --- reading ------------------------------------------------------------------------------
def money(amount_cents: int) -> str:
    """Cents as the currency's units: 2500 → `25.00`."""
    return f"{Decimal(amount_cents) / 100:.2f}"


def _read(study: Study, entry: IncentiveEntry) -> EntryRead:
    codes = {s.id: s.code for s in study.sites}
    return EntryRead(
        id=entry.id,
        participant=entry.participant_code,
        site=codes.get(entry.site_id, ""),
        timepoint=entry.timepoint,
        kind=entry.kind,
        amount=money(entry.amount_cents),
        amount_cents=entry.amount_cents,
        currency=entry.currency,
        state=entry.state,
        earned_at=entry.earned_at,
        approved_at=entry.approved_at,
        issued_at=entry.issued_at,
        issue_method=entry.issue_method,
        redeemed_at=entry.redeemed_at,
        reason=entry.reason,
    )


def at_sites(query: Any, user: Principal) -> Any:
    sites = reachable_sites(user)
    return query if sites is None else query.where(IncentiveEntry.site_id.in_(sites))


def list_entries(
    session: Session,
    *,
    study: Study,
    user: Principal,
    state: EntryState | None = None,
    participant: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[EntryRead]:
    """Entries at the user's sites (of a state, of a participant), oldest first."""
    query = select(IncentiveEntry).where(
        IncentiveEntry.study_id == study.id, IncentiveEntry.id > after_id
    )
    query = at_sites(query, user)
    if state is not None:
        query = query.where(IncentiveEntry.state == state.value)
    if participant is not None:
        query = query.where(IncentiveEntry.participant_code == participant)
    rows = session.scalars(query.order_by(IncentiveEntry.id).limit(limit))
    return [_read(study, entry) for entry in rows]


def _find(session: Session, *, study: Study, entry_id: int, user: Principal) -> IncentiveEntry:
    entry = session.get(IncentiveEntry, entry_id)
    sites = reachable_sites(user)
    if (
        entry is None
        or entry.study_id != study.id
        or (sites is not None and entry.site_id not in sites)
    ):
        raise EntryNotFound(f"no incentive entry {entry_id}")
    return entry


# --- the life-cycle -----------------------------------------------------------------------
def change(
    session: Session,
    *,
    study: Study,
    entry_id: int,
    step: Step,
    actor: Principal,
    reason: str | None = None,
) -> EntryRead:
    """Hold (with a reason), approve, redeem or void (with a reason) the entry; 409
    naming its state when the step does not start from it."""
    if step is Step.issue:
        raise ValueError("issue with `issue_gift_card` or `vendor.vendor_file`")
    now = audit.lock_chain_head(session).at
    entry = _find(session, study=study, entry_id=entry_id, user=actor)
    values: dict[str, Any] = {}
    if step is Step.approve:
        values = {"approved_at": now, "approved_by": actor.id}
    elif step is Step.redeem:
        values = {"redeemed_at": now}
    elif reason is not None:  # hold, void
        values = {"reason": reason}
    before = _move(session, entry, step, now=now, values=values)
    _audit(session, study, entry, step, actor, {"state": (before, entry.state)}, reason=reason)
    return _read(study, entry)


def _move(
    session: Session, entry: IncentiveEntry, step: Step, *, now: datetime, values: dict[str, Any]
) -> str:
    """Take the step in one conditional UPDATE; the state it started from (read after
    the audit chain's head was locked, which every writer takes first: current)."""
    starts, becomes = rules.TRANSITIONS[step]
    before = str(entry.state)
    moved = session.execute(
        update(IncentiveEntry)
        .where(IncentiveEntry.id == entry.id, IncentiveEntry.state.in_(sorted(starts)))
        .values(state=becomes, updated_at=now, **values)
        .returning(IncentiveEntry.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.refresh(entry)
    if moved is None:
        raise EntryStateConflict(rules.refusal(step, entry.state), state=entry.state)
    return before


def _audit(
    session: Session,
    study: Study,
    entry: IncentiveEntry,
    step: Step,
    actor: Principal,
    changes: dict[str, Any],
    *,
    reason: str | None = None,
) -> None:
    audit.record(
        session,
        _AUDIT_ACTION[step],
        actor=actor,
        entity_id=entity(entry.participant_code, entry.timepoint, entry.kind),
        study_id=study.id,
        reason=reason,  # sealed in the trail, as the entry's own
        changes={**changes, "amount_cents": (None, entry.amount_cents)},
    )


def issue_step(
    session: Session,
    study: Study,
    entry: IncentiveEntry,
    actor: Principal,
    *,
    now: datetime,
    values: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    """Issue the entry (409 naming its state when it is not approved), audited."""
    _move(session, entry, Step.issue, now=now, values=values)
    _audit(session, study, entry, Step.issue, actor, changes)


def issue_gift_card(session: Session, *, study: Study, entry_id: int, actor: Principal) -> Issued:
    """Issue the approved entry with a free gift card of its amount and currency; the
    card's code in the answer. 409 `no-gift-card` (nothing changed) when none is left."""
    now = audit.lock_chain_head(session).at
    entry = _find(session, study=study, entry_id=entry_id, user=actor)
    values = {"issued_at": now, "issued_by": actor.id, "issue_method": IssueMethod.gift_card.value}
    before = _move(session, entry, Step.issue, now=now, values=values)
    card = _take_card(session, study=study, entry=entry)
    if card is None:  # the request's transaction is rolled back: the entry stays approved
        raise NoGiftCard(
            f"no gift card of {money(entry.amount_cents)} {entry.currency} is left: load more"
        )
    changes = {
        "state": (before, entry.state),
        "method": (None, IssueMethod.gift_card.value),
        "gift_card": (None, card.id),
    }
    _audit(session, study, entry, Step.issue, actor, changes)
    return Issued(**_read(study, entry).model_dump(), gift_card_code=card.code)


def show_card(session: Session, *, study: Study, entry_id: int, actor: Principal) -> CardShown:
    """The code of the gift card the entry was issued with, shown again (the first
    answer lost); audited with the card's id, never its code. 409 when it has none."""
    audit.lock_chain_head(session)
    entry = _find(session, study=study, entry_id=entry_id, user=actor)
    card = session.scalars(select(GiftCard).where(GiftCard.entry_id == entry.id)).first()
    if card is None:
        raise EntryHasNoCard(f"incentive entry {entry_id} was given no gift card")
    audit.record(
        session,
        AuditAction.incentive_card_shown,
        actor=actor,
        entity_id=entity(entry.participant_code, entry.timepoint, entry.kind),
        study_id=study.id,
        changes={"gift_card": (None, card.id)},
    )
    return CardShown(**_read(study, entry).model_dump(), gift_card_code=card.code)


def _take_card(session: Session, *, study: Study, entry: IncentiveEntry) -> GiftCard | None:
    free = (
        select(GiftCard.id)
        .where(
            GiftCard.study_id == study.id,
            GiftCard.entry_id.is_(None),
            GiftCard.amount_cents == entry.amount_cents,
            GiftCard.currency == entry.currency,
        )
        .order_by(GiftCard.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite writes one at a time
        .scalar_subquery()
    )
    taken = session.execute(
        update(GiftCard)
        .where(GiftCard.id == free, GiftCard.entry_id.is_(None))
        .values(entry_id=entry.id)
        .returning(GiftCard.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return None if taken is None else session.get_one(GiftCard, taken)


# --- the gift-card inventory ----------------------------------------------------------------
def load_gift_cards(
    session: Session, *, study: Study, text: str, actor: Principal
) -> GiftCardsLoaded:
    """Load an inventory file: each good row a card (its code sealed, its keyed hash
    unique: a code loaded before, here or in another study, is rejected by line); the
    file as a whole refused (422, nothing loaded) when it cannot be read."""
    if definition_of(study).incentives is None:
        raise NoIncentives("the study's definition has no `incentives`: nothing to pay")
    try:
        read = rules.read_card_file(text)
    except rules.InvalidCardFile as bad:
        raise InvalidInput([FieldProblem((), str(bad))]) from None
    now = audit.lock_chain_head(session).at
    keys = sealing_keys_of(session)
    hashes = {row.line: keyed_hash(keys, "gift_card", row.code) for row in read.rows}
    known = _loaded_hashes(session, [h for h in hashes.values() if h is not None])
    rejected = list(read.rejected)
    digest = hashlib.sha256(text.encode()).hexdigest()
    batch = f"{now:%Y%m%d%H%M%S}-{digest[:12]}"
    loaded = 0
    for row in read.rows:
        if hashes[row.line] in known:
            rejected.append((row.line, "this code was loaded before"))
            continue
        session.add(
            GiftCard(
                study_id=study.id,
                batch=batch,
                code=row.code,
                code_index=hashes[row.line],
                amount_cents=row.amount_cents,
                currency=row.currency,
                loaded_at=now,
                loaded_by=actor.id,
            )
        )
        loaded += 1
    session.flush()
    audit.record(
        session,
        AuditAction.gift_cards_loaded,
        actor=actor,
        entity_id=batch,
        study_id=study.id,
        changes={
            "loaded": (None, loaded),
            "rejected": (None, len(rejected)),
            "sha256": (None, digest),
        },
    )
    return GiftCardsLoaded(
        batch=batch,
        loaded=loaded,
        rejected=[RejectedLine(line=line, problem=p) for line, p in sorted(rejected)],
    )


def _loaded_hashes(session: Session, hashes: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(hashes), _HASH_CHUNK):
        chunk = hashes[start : start + _HASH_CHUNK]
        found |= set(
            session.scalars(select(GiftCard.code_index).where(GiftCard.code_index.in_(chunk)))
        )
    return found


def gift_card_summary(session: Session, *, study: Study) -> GiftCardSummary:
    """The study's cards by amount and currency: how many are free, how many given."""
    assigned = func.count(GiftCard.entry_id)
    rows = session.execute(
        select(GiftCard.amount_cents, GiftCard.currency, func.count(), assigned)
        .where(GiftCard.study_id == study.id)
        .group_by(GiftCard.amount_cents, GiftCard.currency)
        .order_by(GiftCard.currency, GiftCard.amount_cents)
    ).all()
    return GiftCardSummary(
        cards=[
            CardCount(amount=money(cents), currency=cur, unassigned=total - given, assigned=given)
            for cents, cur, total, given in rows
        ]
    )
