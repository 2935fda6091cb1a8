"""The contact log, the locator, who is due for a call, and missed-visit reasons (SPEC 11;
API.md "Added in the second release"). Coordinators of the participant's site and
admins (`contact_participants`); another site's participant is 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.paging import PageDep
from app.api.params import CodePath, SlugPath
from app.auth.deps import STAFF_ROUTES
from app.db.base import utcnow
from app.idempotency.deps import IdempotencyDep
from app.retention import calls, contact_details, missed, service
from app.retention.deps import AlternateId, Contacter, TimepointPath
from app.retention.schemas import (
    AlternateContactCreate,
    AlternateContactList,
    AlternateContactRead,
    CallList,
    ContactCorrected,
    ContactCorrection,
    ContactCreate,
    ContactList,
    ContactRead,
    MissedReasonIn,
    MissedReasonRead,
)
from app.studies.service import RowLock, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["retention"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

PARTICIPANT = "/participants/{code}"


@router.post(f"{PARTICIPANT}/contacts", status_code=201, response_model=ContactRead)
def log_contact(
    slug: SlugPath,
    code: CodePath,
    body: ContactCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Contacter,
) -> Response:
    """Record an attempt to reach the participant: how, the outcome, a note, the next
    step and when (the participant is due for a call from that day)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    logged = service.log_contact(session, study=study, code=code, data=body, actor=actor)
    return idempotency.remember(logged)


@router.put(f"{PARTICIPANT}/contact", response_model=ContactCorrected)
def correct_contact(
    slug: SlugPath,
    code: CodePath,
    body: ContactCorrection,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Contacter,
) -> Response:
    """Correct the participant's name, email or phone (only those given change; null
    clears an email or a phone); answers which fields changed, never their values."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    corrected = contact_details.correct_contact(
        session, study=study, code=code, data=body, actor=actor
    )
    return idempotency.remember(corrected)


@router.get(f"{PARTICIPANT}/contacts", response_model=ContactList)
def list_contacts(
    slug: SlugPath, code: CodePath, session: ReadSessionDep, user: Contacter, page: PageDep
) -> ContactList:
    """The participant's contact attempts, newest first, with who made each."""
    study = get_study(session, slug=slug, user=user)
    rows = service.list_contacts(
        session, study=study, code=code, user=user, before_id=page.after, limit=page.limit
    )
    return ContactList(
        items=rows, next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None)
    )


@router.post(
    f"{PARTICIPANT}/alternate-contacts", status_code=201, response_model=AlternateContactRead
)
def add_alternate_contact(
    slug: SlugPath,
    code: CodePath,
    body: AlternateContactCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Contacter,
) -> Response:
    """Record someone the participant allowed the team to ask after them (their
    permission's date is required); purged when the study is locked."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    added = service.add_alternate_contact(session, study=study, code=code, data=body, actor=actor)
    return idempotency.remember(added)


@router.get(f"{PARTICIPANT}/alternate-contacts", response_model=AlternateContactList)
def list_alternate_contacts(
    slug: SlugPath,
    code: CodePath,
    session: ReadSessionDep,
    user: Contacter,
    page: PageDep,
    removed: Annotated[bool, Query(description="include those taken off")] = False,
) -> AlternateContactList:
    """The participant's alternate contacts, oldest first."""
    study = get_study(session, slug=slug, user=user)
    rows = service.list_alternate_contacts(
        session,
        study=study,
        code=code,
        user=user,
        removed=removed,
        after_id=page.after,
        limit=page.limit,
    )
    return AlternateContactList(
        items=rows, next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None)
    )


@router.post(
    f"{PARTICIPANT}/alternate-contacts/{{contact_id}}/remove", response_model=AlternateContactRead
)
def remove_alternate_contact(
    slug: SlugPath,
    code: CodePath,
    contact_id: AlternateId,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Contacter,
) -> Response:
    """Take an alternate contact off: what it held is cleared (409 when already removed)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    removed = service.remove_alternate_contact(
        session, study=study, code=code, contact_id=contact_id, actor=actor
    )
    return idempotency.remember(removed)


@router.post(f"{PARTICIPANT}/surveys/{{timepoint}}/missed-reason", response_model=MissedReasonRead)
def give_missed_reason(
    slug: SlugPath,
    code: CodePath,
    timepoint: TimepointPath,
    body: MissedReasonIn,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Contacter,
) -> Response:
    """Why a missed survey was missed (unreachable, declined, too unwell, other); 409
    when the survey is not missed."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    given = missed.give_missed_reason(
        session, study=study, code=code, timepoint=timepoint, data=body, actor=actor
    )
    return idempotency.remember(given)


@router.get("/calls", response_model=CallList)
def due_for_call(
    slug: SlugPath, session: ReadSessionDep, user: Contacter, page: PageDep
) -> CallList:
    """Participants due for a call at the caller's sites, each with the rules that put
    them there and their latest contact attempt."""
    study = get_study(session, slug=slug, user=user)
    rows = calls.due_for_call(
        session, study=study, user=user, after_id=page.after, limit=page.limit, now=utcnow()
    )
    return CallList(
        items=rows, next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None)
    )
