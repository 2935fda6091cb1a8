"""Text messages in the console (SPEC 11): a participant's texting preferences (channel,
consent to texting, time zone) on their page, and the texts participants sent at the
top of the worklist, each with its time to respond, until a coordinator handles it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.api.deps import SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs
from app.console.forms import problems_of, text
from app.console.shared import acting, back
from app.errors import InvalidInput
from app.studies.models import Study
from app.studies.service import definition_of
from app.texting import service
from app.texting.schemas import ReplyHandle, TextingUpdate

router = console_router()

Contacter = Annotated[Staff, needs(Permission.contact_participants)]
ReplyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LIMIT = 100  # texts shown on the worklist
KIND_WORDS = {
    "reply": "Reply",
    "help": "Asked for help (HELP)",
    "stop": "Opted out of texts (STOP)",
    "start": "Opted back in (START)",
}
CHANNEL_WORDS = {"email": "Email", "sms": "Text messages", "both": "Email and text messages"}


def reply_rows(
    session: Session, staff: Staff, study: Study, *, now: datetime
) -> list[dict[str, Any]]:
    """Texts not yet handled at the user's sites, the most urgent first (none for roles
    that do not contact participants)."""
    if not staff.may(Permission.contact_participants):
        return []
    rows = service.replies(session, study=study, user=staff.user, open_only=True, limit=LIMIT)
    zone = definition_of(study).zone()

    def shown(at: datetime) -> str:
        return _aware(at).astimezone(zone).strftime("%d %b %Y, %H:%M")

    return [
        {
            "id": r.id,
            "participant": r.participant_code,
            "from_number": service.number_shown(r, staff.user),
            "kind": KIND_WORDS.get(r.kind, r.kind),
            "body": r.body,
            "received": shown(r.received_at),
            "respond_by": shown(r.respond_by),
            "respond_by_iso": _aware(r.respond_by).isoformat(),
            "overdue": _aware(r.respond_by) <= now,
        }
        for r in sorted(rows, key=lambda r: (r.respond_by, r.id))
    ]


def _aware(at: datetime) -> datetime:
    """SQLite gives times back without their zone: they are UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@router.post("/studies/{slug}/participants/{code}/texting")
def save_texting(
    slug: SlugPath, code: CodePath, session: SessionDep, staff: Contacter, form: CheckedForm
) -> Response:
    """Record the participant's channel, consent to texting and time zone."""
    study = acting(session, slug, staff)
    try:
        change = TextingUpdate(
            channel=text(form, "channel", 8),
            sms_consent=text(form, "sms_consent", 8) == "yes",
            timezone=text(form, "timezone", 64) or None,
        )
    except ValidationError as invalid:
        raise InvalidInput(problems_of(invalid)) from None
    service.set_texting(
        session,
        study=study,
        code=code,
        change=service.TextingChange(change.channel, change.sms_consent, change.timezone),
        actor=staff.user,
    )
    return back(study, f"/participants/{code}", done="texting")


@router.post("/studies/{slug}/sms/replies/{reply_id}/handle")
def handle_reply(
    slug: SlugPath, reply_id: ReplyId, session: SessionDep, staff: Contacter, form: CheckedForm
) -> Response:
    """A text dealt with (answered, called back), with a note."""
    study = acting(session, slug, staff)
    try:
        note = ReplyHandle(note=text(form, "note")).note
    except ValidationError as invalid:
        raise InvalidInput(problems_of(invalid)) from None
    service.handle_reply(session, study=study, reply_id=reply_id, note=note, actor=staff.user)
    return back(study, "/worklist", done="reply")
