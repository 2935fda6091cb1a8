"""The incentives ledger in the console (SPEC 11): the study's entries with filters and
a button for each next step (approve, hold or void with a reason, issue a gift card,
record it redeemed), the payment vendor's file, this year's totals with the tax flag,
the reconciliation, the gift-card inventory and, for admins, loading cards. Each page
calls the service the API calls (`incentives.service`), with the signed-in user as the
actor; an issued card's code is shown on the page the issue answers with, and again
(audited) by its "Show the card's code" button; past vendor files are downloaded again
from their entries. Each form is acted on once however often it is sent (`once`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission
from app.console import once
from app.console.deps import (
    FORM_BODY_LIMIT,
    CheckedForm,
    Staff,
    console_router,
    needs,
    study_view,
)
from app.console.forms import FormRefused, text
from app.console.shared import acting, back
from app.db.base import utcnow
from app.errors import FieldProblem, InvalidInput, NotFound
from app.exports import downloads
from app.idempotency.service import StoredResponse
from app.incentives import reports, service, vendor
from app.incentives.models import EntryState
from app.incentives.rules import Step
from app.incentives.schemas import MAX_REASON, GiftCardsLoaded, VendorFile
from app.studies import service as studies
from app.studies.models import Study
from app.web.forms import Form

router = console_router()

Manager = Annotated[Staff, needs(Permission.manage_incentives)]
Stocker = Annotated[Staff, needs(Permission.stock_incentives)]
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1)]

LIST_LIMIT = 200
# A pasted inventory is bounded by the console's form size (~2,000 cards); larger
# files go through the API.
CARD_TEXT_LIMIT = FORM_BODY_LIMIT

STATE_WORDS = {
    EntryState.earned: "earned",
    EntryState.held: "held for review",
    EntryState.approved: "approved",
    EntryState.issued: "issued",
    EntryState.redeemed: "redeemed",
    EntryState.void: "void",
}
KIND_WORDS = {"completion": "Survey completed", "on_time_bonus": "On-time bonus"}
DONE = {
    "approve": "The entry is approved.",
    "hold": "The entry is held for review.",
    "void": "The entry is void.",
    "redeem": "The entry is recorded as redeemed.",
}
STEPS = {"approve": Step.approve, "hold": Step.hold, "void": Step.void, "redeem": Step.redeem}


@router.get("/studies/{slug}/incentives")
def incentives_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Manager,
    state: Annotated[str, Query(max_length=16)] = "",
    participant: Annotated[str, Query(max_length=32)] = "",
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The ledger (filtered), this year's totals, the reconciliation and the cards."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return _page(request, session, staff, study, state, participant, notice=DONE.get(done or ""))


def _page(
    request: Request,
    session: Any,
    staff: Staff,
    study: Study,
    state: str = "",
    participant: str = "",
    *,
    notice: str | None = None,
    extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    chosen = EntryState(state) if state in set(EntryState) else None
    entries = service.list_entries(
        session,
        study=study,
        user=staff.user,
        state=chosen,
        participant=participant or None,
        limit=LIST_LIMIT,
    )
    year = utcnow().astimezone(studies.definition_of(study).zone()).year
    totals = reports.totals(session, study=study, user=staff.user, year=year)
    if participant:  # the page is about one participant: so are its totals
        totals.participants = [p for p in totals.participants if p.participant == participant]
    context: dict[str, Any] = {
        "entries": entries,
        "limit": LIST_LIMIT,
        "query": {"state": chosen.value if chosen else "", "participant": participant},
        "states": [(s.value, words) for s, words in STATE_WORDS.items()],
        "state_words": {s.value: words for s, words in STATE_WORDS.items()},
        "kind_words": KIND_WORDS,
        "totals": totals,
        "reconciliation": reports.reconciliation(session, study=study, user=staff.user),
        "cards": service.gift_card_summary(session, study=study).cards,
        "vendor_files": vendor.past_files(session, study=study, user=staff.user).files,
        "form_id": once.new_form_id,
        "pays": studies.definition_of(study).incentives is not None,
        "notice": notice,
        "money": service.money,
        "max_reason": MAX_REASON,
        "card_limit": CARD_TEXT_LIMIT,
        **(extra or {}),
    }
    return study_view(
        request, staff, study, "console/incentives.html", context, status_code=status_code
    )


@router.post("/studies/{slug}/incentives/{entry_id}/issue")
def issue(
    request: Request,
    slug: SlugPath,
    entry_id: EntryId,
    session: SessionDep,
    staff: Manager,
    form: CheckedForm,
) -> Response:
    """Issue the entry with a gift card; the page shows the card's code. The same form
    sent again shows it again (audited as shown), rather than a 409 that hides it."""
    study = acting(session, slug, staff)
    claim = once.claim(session, user_id=staff.user.id, form=form, path=request.url.path)
    if isinstance(claim, StoredResponse):
        return _show_card(request, session, staff, study, entry_id)
    issued = service.issue_gift_card(session, study=study, entry_id=entry_id, actor=staff.user)
    once.done(session, claim, "issued")
    return _no_store(_page(request, session, staff, study, extra={"issued": issued}))


@router.post("/studies/{slug}/incentives/{entry_id}/card")
def show_card(
    request: Request,
    slug: SlugPath,
    entry_id: EntryId,
    session: SessionDep,
    staff: Manager,
    form: CheckedForm,
) -> Response:
    """Show an issued entry's gift-card code again (the first page was lost); audited."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return _show_card(request, session, staff, study, entry_id)


def _show_card(
    request: Request, session: Any, staff: Staff, study: Study, entry_id: int
) -> Response:
    shown = service.show_card(session, study=study, entry_id=entry_id, actor=staff.user)
    extra = {"issued": shown, "shown_again": True}
    return _no_store(_page(request, session, staff, study, extra=extra))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"  # a card's code: in no cache
    return response


@router.post("/studies/{slug}/incentives/{entry_id}/{step}")
def change(
    request: Request,
    slug: SlugPath,
    entry_id: EntryId,
    step: Annotated[str, Path(max_length=16)],
    session: SessionDep,
    staff: Manager,
    form: CheckedForm,
) -> Response:
    """Approve, hold, void or record as redeemed; hold and void need a reason. The same
    form sent again goes where the first went."""
    study = acting(session, slug, staff)
    taken = STEPS.get(step)
    if taken is None:
        raise NotFound(f"no step {step!r}: approve, hold, void or redeem")
    reason = None
    if taken in (Step.hold, Step.void):
        reason = " ".join(_text(form, "reason").split())
        if not 3 <= len(reason) <= MAX_REASON:
            message = f"Say why (3 to {MAX_REASON} characters)"
            page = _page(
                request,
                session,
                staff,
                study,
                extra={"errors": {entry_id: message}},
                status_code=422,
            )
            raise FormRefused(page)
    claim = once.claim(session, user_id=staff.user.id, form=form, path=request.url.path)
    if isinstance(claim, StoredResponse):
        return RedirectResponse(claim.body, status_code=303)
    service.change(
        session, study=study, entry_id=entry_id, step=taken, actor=staff.user, reason=reason
    )
    went = back(study, "/incentives", done=step)
    once.done(session, claim, went.headers["location"])
    return went


@router.post("/studies/{slug}/incentives/vendor-file")
def vendor_file(
    request: Request, slug: SlugPath, session: SessionDep, staff: Manager, form: CheckedForm
) -> Response:
    """The payment vendor's CSV (a download): the approved entries at the user's sites,
    now issued. The same form sent again downloads the same file, made again."""
    study = acting(session, slug, staff)
    claim = once.claim(session, user_id=staff.user.id, form=form, path=request.url.path)
    if isinstance(claim, StoredResponse):
        at = datetime.fromisoformat(claim.body)
        again = vendor.vendor_file_again(
            session, study=study, actor=staff.user, issued_at=at, must_exist=False
        )
        return _csv(again)
    made = vendor.vendor_file(session, study=study, actor=staff.user)
    once.done(session, claim, made.issued_at.isoformat())
    return _csv(made)


@router.get("/studies/{slug}/incentives/vendor-file")
def vendor_file_again(
    slug: SlugPath,
    session: SessionDep,
    staff: Manager,
    issued_at: Annotated[datetime, Query()],
) -> Response:
    """A past vendor file, downloaded again (its entries at the user's sites); audited."""
    if issued_at.tzinfo is None:
        raise InvalidInput([FieldProblem(("query", "issued_at"), "give the time with its zone")])
    study = studies.get_study(session, slug=slug, user=staff.user)
    again = vendor.vendor_file_again(session, study=study, actor=staff.user, issued_at=issued_at)
    return _csv(again)


def _csv(made: VendorFile) -> Response:
    return Response(
        made.csv, media_type="text/csv; charset=utf-8", headers=downloads.attachment(made.filename)
    )


@router.post("/studies/{slug}/gift-cards")
def load_cards(
    request: Request, slug: SlugPath, session: SessionDep, staff: Stocker, form: CheckedForm
) -> Response:
    """Load gift cards pasted as CSV; the page lists rows refused by line. The same
    form sent again shows what the first loaded (rather than every row refused)."""
    study = acting(session, slug, staff)
    pasted = _text(form, "cards", CARD_TEXT_LIMIT)
    claim = once.claim(session, user_id=staff.user.id, form=form, path=request.url.path)
    if isinstance(claim, StoredResponse):
        loaded = GiftCardsLoaded.model_validate_json(claim.body)
        return _page(request, session, staff, study, extra={"loaded": loaded})
    try:
        loaded = service.load_gift_cards(session, study=study, text=pasted, actor=staff.user)
    except InvalidInput as invalid:
        extra = {"card_error": invalid.detail, "pasted": pasted}
        raise FormRefused(
            _page(request, session, staff, study, extra=extra, status_code=422)
        ) from None
    once.done(session, claim, loaded.model_dump_json())
    return _page(request, session, staff, study, extra={"loaded": loaded})


def _text(form: Form, name: str, limit: int = MAX_REASON + 1) -> str:
    """A field at most one character over its bound, so a longer one is refused, not cut."""
    return text(form, name, limit)
