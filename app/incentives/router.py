"""The incentives ledger's API (SPEC 11; API.md "Added in the second release"): the
ledger, its state changes, the payment vendor's file, the gift-card inventory, the
year's totals and the reconciliation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.paging import PageDep
from app.api.params import SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.errors import FieldProblem, InvalidInput
from app.idempotency.deps import IdempotencyDep
from app.incentives import reports, service, vendor
from app.incentives.models import EntryState
from app.incentives.rules import MAX_CARD_FILE_BYTES, Step
from app.incentives.schemas import (
    CardShown,
    EntryList,
    EntryRead,
    GiftCardsLoaded,
    GiftCardSummary,
    IssueBody,
    Issued,
    ReasonBody,
    Reconciliation,
    Totals,
    VendorFile,
    VendorFiles,
)
from app.studies.service import RowLock, definition_of, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["incentives"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

Manager = Annotated[Principal, Depends(require(Permission.manage_incentives))]
Stocker = Annotated[Principal, Depends(require(Permission.stock_incentives))]
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the entry's id")]
Year = Annotated[int | None, Query(ge=2000, le=2100, description="default: this year")]


@router.get("/incentives", response_model=EntryList)
def list_entries(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Manager,
    page: PageDep,
    state: EntryState | None = None,
    participant: Annotated[str | None, Query(max_length=32, description="code")] = None,
) -> EntryList:
    """The ledger at the caller's sites (every site for admins), oldest first."""
    study = get_study(session, slug=slug, user=user)
    rows = service.list_entries(
        session,
        study=study,
        user=user,
        state=state,
        participant=participant,
        after_id=page.after,
        limit=page.limit,
    )
    return EntryList(
        items=rows, next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None)
    )


def _step(
    step: Step,
    slug: str,
    entry_id: int,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Principal,
    reason: str | None = None,
) -> Response:
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    changed = service.change(
        session, study=study, entry_id=entry_id, step=step, actor=actor, reason=reason
    )
    return idempotency.remember(changed)


@router.post("/incentives/{entry_id}/approve", response_model=EntryRead)
def approve(
    slug: SlugPath,
    entry_id: EntryId,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Manager,
) -> Response:
    """Approve an entry earned, or held and reviewed: it may now be issued."""
    return _step(Step.approve, slug, entry_id, session, idempotency, actor)


@router.post("/incentives/{entry_id}/hold", response_model=EntryRead)
def hold(
    slug: SlugPath,
    entry_id: EntryId,
    body: ReasonBody,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Manager,
) -> Response:
    """Hold an entry not yet paid for a fraud review, saying why."""
    return _step(Step.hold, slug, entry_id, session, idempotency, actor, body.reason)


@router.post("/incentives/{entry_id}/void", response_model=EntryRead)
def void(
    slug: SlugPath,
    entry_id: EntryId,
    body: ReasonBody,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Manager,
) -> Response:
    """Void a held entry (the review found it is not to be paid), saying why."""
    return _step(Step.void, slug, entry_id, session, idempotency, actor, body.reason)


@router.post("/incentives/{entry_id}/redeem", response_model=EntryRead)
def redeem(
    slug: SlugPath,
    entry_id: EntryId,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Manager,
) -> Response:
    """Record that the participant redeemed what was issued (the card was used, the
    vendor paid)."""
    return _step(Step.redeem, slug, entry_id, session, idempotency, actor)


@router.post("/incentives/{entry_id}/issue", response_model=Issued)
def issue(
    slug: SlugPath,
    entry_id: EntryId,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Manager,
    body: IssueBody | None = None,
) -> Response:
    """Issue an approved entry with a gift card of its amount from the inventory: the
    card's code is in this answer only (409 `no-gift-card` when none is left)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    issued = service.issue_gift_card(session, study=study, entry_id=entry_id, actor=actor)
    return idempotency.remember(issued)


@router.post("/incentives/{entry_id}/card", response_model=CardShown)
def show_card(
    slug: SlugPath,
    entry_id: EntryId,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Manager,
) -> Response:
    """The code of the gift card an entry was issued with, again (the issue's answer was
    lost); audited. Not kept for replays: a replay answers null, a new request the code
    (409 `incentive-has-no-card` when the entry was given none)."""
    study = get_study(session, slug=slug, user=actor)
    return idempotency.remember(
        service.show_card(session, study=study, entry_id=entry_id, actor=actor)
    )


@router.post("/incentives/vendor-file", response_model=VendorFile)
def vendor_file(
    slug: SlugPath, session: SessionDep, idempotency: IdempotencyDep, actor: Manager
) -> Response:
    """The payment vendor's CSV of the approved entries at the caller's sites, which
    are issued by it (replay the request with its Idempotency-Key, or ask for it by its
    `issued_at`, for the same file)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    return idempotency.remember(vendor.vendor_file(session, study=study, actor=actor))


@router.get("/incentives/vendor-file", response_model=VendorFile)
def vendor_file_again(
    slug: SlugPath,
    session: SessionDep,
    actor: Manager,
    issued_at: Annotated[datetime, Query(description="the file's `issued_at`, with its zone")],
) -> VendorFile:
    """A vendor file made before, made again from its entries at the caller's sites:
    the same CSV (its SHA-256 as first audited); audited. 404 when none was made then."""
    if issued_at.tzinfo is None:
        problem = FieldProblem(("query", "issued_at"), "give the time with its zone")
        raise InvalidInput([problem])
    study = get_study(session, slug=slug, user=actor)
    return vendor.vendor_file_again(session, study=study, actor=actor, issued_at=issued_at)


@router.get("/incentives/vendor-files", response_model=VendorFiles)
def vendor_files(slug: SlugPath, session: ReadSessionDep, user: Manager) -> VendorFiles:
    """The latest vendor files with entries at the caller's sites, newest first."""
    study = get_study(session, slug=slug, user=user)
    return vendor.past_files(session, study=study, user=user)


@router.get("/incentives/totals", response_model=Totals)
def totals(slug: SlugPath, session: ReadSessionDep, user: Manager, year: Year = None) -> Totals:
    """What each participant at the caller's sites was paid in a calendar year of the
    study's zone, flagged at the tax-reporting threshold."""
    study = get_study(session, slug=slug, user=user)
    if year is None:
        year = utcnow().astimezone(definition_of(study).zone()).year
    return reports.totals(session, study=study, user=user, year=year)


@router.get("/incentives/reconciliation", response_model=Reconciliation)
def reconciliation(slug: SlugPath, session: ReadSessionDep, user: Manager) -> Reconciliation:
    """Counts and sums per state, gift cards loaded and given, what must be zero."""
    study = get_study(session, slug=slug, user=user)
    return reports.reconciliation(session, study=study, user=user)


@router.post(
    "/gift-cards",
    response_model=GiftCardsLoaded,
    max_body_size=MAX_CARD_FILE_BYTES,
)
def load_gift_cards(
    slug: SlugPath,
    content: Annotated[
        str, Body(media_type="text/csv", description="CSV: code,amount,currency (a header first)")
    ],
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Stocker,
) -> Response:
    """Load gift cards into the study's inventory; rows refused are listed by line."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    loaded = service.load_gift_cards(session, study=study, text=content, actor=actor)
    return idempotency.remember(loaded)


@router.get("/gift-cards/summary", response_model=GiftCardSummary)
def gift_card_summary(slug: SlugPath, session: ReadSessionDep, user: Manager) -> GiftCardSummary:
    """The study's gift cards by amount: how many are free, how many given."""
    study = get_study(session, slug=slug, user=user)
    return service.gift_card_summary(session, study=study)
