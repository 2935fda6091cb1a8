"""What the incentives ledger adds up to (SPEC 11): each participant's payments in a
calendar year of the study's zone with the tax-reporting flag, and the reconciliation
of states, amounts and gift cards (with what must be zero)."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.auth.principal import Principal
from app.incentives import rules
from app.incentives.models import EntryState, GiftCard, IncentiveEntry, IssueMethod
from app.incentives.schemas import ParticipantYear, Reconciliation, StateSum, Totals
from app.incentives.service import at_sites, money
from app.studies.models import Study
from app.studies.service import definition_of


def totals(session: Session, *, study: Study, user: Principal, year: int) -> Totals:
    """What each participant at the user's sites was paid in the calendar year (of the
    issue, in the study's zone), flagged at the definition's tax threshold."""
    definition = definition_of(study)
    start, end = (at.astimezone(UTC) for at in rules.year_bounds(year, definition.zone()))
    threshold = definition.incentives.tax_threshold if definition.incentives else None
    query = select(
        IncentiveEntry.participant_code,
        IncentiveEntry.site_id,
        IncentiveEntry.currency,
        func.sum(IncentiveEntry.amount_cents),
        func.count(),
    ).where(
        IncentiveEntry.study_id == study.id,
        IncentiveEntry.state.in_(rules.PAID),
        IncentiveEntry.issued_at >= start,
        IncentiveEntry.issued_at < end,
    )
    query = at_sites(query, user).group_by(
        IncentiveEntry.participant_code, IncentiveEntry.site_id, IncentiveEntry.currency
    )
    codes = {s.id: s.code for s in study.sites}
    people = [
        ParticipantYear(
            participant=code,
            site=codes.get(site_id, ""),
            paid=money(int(paid)),
            paid_cents=int(paid),
            currency=currency,
            entries=count,
            over_threshold=rules.over_threshold(int(paid), threshold),
        )
        for code, site_id, currency, paid, count in session.execute(
            query.order_by(IncentiveEntry.participant_code, IncentiveEntry.currency)
        )
    ]
    return Totals(
        year=year, threshold=None if threshold is None else f"{threshold:.2f}", participants=people
    )


def reconciliation(session: Session, *, study: Study, user: Principal) -> Reconciliation:
    """Per state counts and sums at the user's sites; the study's gift cards loaded and
    given; what must be zero."""
    in_study = IncentiveEntry.study_id == study.id
    query = select(
        IncentiveEntry.state,
        IncentiveEntry.currency,
        func.count(),
        func.sum(IncentiveEntry.amount_cents),
    ).where(in_study)
    query = at_sites(query, user).group_by(IncentiveEntry.state, IncentiveEntry.currency)
    states = [
        StateSum(state=state, currency=currency, entries=count, amount_cents=int(total))
        for state, currency, count, total in session.execute(
            query.order_by(IncentiveEntry.state, IncentiveEntry.currency)
        )
    ]

    def summed(*names: str) -> int:
        return sum(s.amount_cents for s in states if s.state in names)

    cards = session.execute(
        select(
            func.count(),
            func.count(GiftCard.entry_id),
            func.coalesce(func.sum(GiftCard.amount_cents), 0),
            func.coalesce(
                func.sum(GiftCard.amount_cents).filter(GiftCard.entry_id.is_not(None)), 0
            ),
        ).where(GiftCard.study_id == study.id)
    ).one()
    card_of_entry = and_(GiftCard.entry_id == IncentiveEntry.id)
    without_card = select(func.count()).where(
        in_study,
        IncentiveEntry.state.in_(rules.PAID),
        IncentiveEntry.issue_method == IssueMethod.gift_card.value,
        ~select(GiftCard.id).where(card_of_entry).exists(),
    )
    unissued = (
        select(func.count())
        .select_from(GiftCard)
        .join(IncentiveEntry, card_of_entry)
        .where(GiftCard.study_id == study.id, IncentiveEntry.state.not_in(rules.PAID))
    )
    return Reconciliation(
        states=states,
        earned_cents=summed(*(s.value for s in EntryState)),
        approved_cents=summed("approved", *rules.PAID),
        issued_cents=summed(*rules.PAID),
        redeemed_cents=summed("redeemed"),
        void_cents=summed("void"),
        cards_loaded=cards[0],
        cards_assigned=cards[1],
        cards_loaded_cents=int(cards[2]),
        cards_assigned_cents=int(cards[3]),
        issued_without_card=session.scalar(at_sites(without_card, user)) or 0,
        cards_on_unissued_entries=session.scalar(unissued) or 0,
    )
