"""Text messages (SPEC 11): a participant's texting preferences, the texts participants
sent (listed and handled by coordinators), and the SMS provider's two webhooks."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute, storable
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.paging import PageDep
from app.api.params import CodePath, SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.errors import FieldProblem, InvalidInput
from app.idempotency.deps import IdempotencyDep
from app.studies.service import RowLock, get_study
from app.texting import service
from app.texting.deps import SignedForm
from app.texting.schemas import (
    DeliveryRecorded,
    ReplyHandle,
    ReplyList,
    ReplyRead,
    TextingRead,
    TextingUpdate,
    reply_read,
)

router = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["texting"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)
# Called by the provider, not by staff: signed with the account's token instead. The
# request slot is taken in `SignedForm`, after the form is read and its signature checked.
webhooks = APIRouter(
    prefix="/api/v1/sms",
    tags=["texting"],
    responses=PROBLEM_RESPONSES,
    max_body_size=64 * 1024,  # 1,600 characters of emoji, percent-encoded, and the rest
)

Contacter = Annotated[Principal, Depends(require(Permission.contact_participants))]
ReplyId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the text's id")]
SID = re.compile(r"^[A-Za-z0-9]{1,64}$")
MAX_BODY = 1600  # Twilio's longest message
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@router.put("/participants/{code}/texting", response_model=TextingRead)
def set_texting(
    slug: SlugPath,
    code: CodePath,
    body: TextingUpdate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Contacter,
) -> Response:
    """Record the participant's channel, consent to texting and time zone."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    change = service.TextingChange(body.channel, body.sms_consent, body.timezone)
    p = service.set_texting(session, study=study, code=code, change=change, actor=actor)
    return idempotency.remember(
        TextingRead(
            code=p.code,
            channel=p.channel,
            sms_consent=p.sms_consent_at is not None,
            sms_consent_at=p.sms_consent_at,
            sms_stopped_at=p.sms_stopped_at,
            timezone=p.timezone,
        )
    )


@router.get("/sms/replies", response_model=ReplyList)
def list_replies(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Contacter,
    page: PageDep,
    open_only: Annotated[bool, Query(alias="open", description="only those not handled")] = False,
) -> ReplyList:
    """Texts participants sent, at the caller's sites (admins: also unknown numbers)."""
    study = get_study(session, slug=slug, user=user)
    rows = service.replies(
        session, study=study, user=user, open_only=open_only, after_id=page.after, limit=page.limit
    )
    return ReplyList(
        items=[reply_read(r, from_number=service.number_shown(r, user)) for r in rows],
        next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None),
    )


@router.post("/sms/replies/{reply_id}/handle", response_model=ReplyRead)
def handle_reply(
    slug: SlugPath,
    reply_id: ReplyId,
    body: ReplyHandle,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Contacter,
) -> Response:
    """Mark a text as dealt with (answered, called back), with a note."""
    study = get_study(session, slug=slug, user=actor)
    reply = service.handle_reply(
        session, study=study, reply_id=reply_id, note=body.note, actor=actor
    )
    return idempotency.remember(reply_read(reply))


@webhooks.post("/status", response_model=DeliveryRecorded)
def delivery_status(form: SignedForm, session: SessionDep) -> DeliveryRecorded:
    """The provider's delivery status of a text we sent (`MessageSid`, `MessageStatus`)."""
    sid = _field(form, "MessageSid", SID)
    status = form.get("MessageStatus", "").lower()
    if status not in service.DELIVERY:
        raise InvalidInput([FieldProblem(("MessageStatus",), "not a delivery status")])
    error_code = form.get("ErrorCode") or None
    if error_code is not None and not error_code.isdigit():
        error_code = None
    recorded = service.record_delivery(
        session,
        provider_ref=sid,
        status=status,
        error_code=error_code[:10] if error_code else None,
        now=utcnow(),
    )
    return DeliveryRecorded(recorded=recorded)


@webhooks.post("/inbound", response_class=Response)
def inbound(form: SignedForm, session: SessionDep) -> Response:
    """A text a participant (or anyone) sent to the study's number: recorded once,
    answered through the outbox (the crisis line), listed for coordinators."""
    sid = _field(form, "MessageSid", SID)
    sender = form.get("From", "").strip()
    if not 0 < len(sender) <= 40 or not storable(sender):
        raise InvalidInput([FieldProblem(("From",), "not a phone number")])
    # Kept whatever it holds (it may be a crisis): what cannot be stored is dropped.
    text = "".join(c for c in form.get("Body", "")[:MAX_BODY] if storable(c))
    service.receive(
        session, text=service.Inbound(provider_ref=sid, from_number=sender, body=text), now=utcnow()
    )
    return Response(EMPTY_TWIML, media_type="text/xml")


def _field(form: dict[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = form.get(name, "")
    if not pattern.match(value):
        raise InvalidInput([FieldProblem((name,), "missing or malformed")])
    return value
