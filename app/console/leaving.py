"""Leaving the study from the console: what the person stops (the kinds allowed now), the
date, a coded reason and the reason in words, recorded by the service the API's withdraw
calls (`participants.service.withdraw`), so that a console withdrawal keeps
intention-to-treat as the API's does."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import Request, Response

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs, study_view
from app.console.forms import FormRefused, field_errors, text
from app.console.shared import acting, back
from app.errors import CannotWithdraw, FieldProblem, InvalidInput
from app.participants import leaving, lifecycle
from app.participants import service as participants
from app.participants.leaving import CATEGORY_LABELS, KIND_LABELS, LeavingCategory, LeavingKind
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.studies import service as studies
from app.studies.models import Study
from app.web.forms import Form

router = console_router()

Withdrawer = Annotated[Staff, needs(Permission.withdraw)]

FIELDS = ("kind", "withdrawn_on", "category", "reason")

# What each kind does, under its label (docs/leaving.md).
KIND_HINTS: dict[LeavingKind, str] = {
    LeavingKind.intervention: "Surveys and reminders continue. The participant stays "
    "randomized and is analysed in their group.",
    LeavingKind.lost: "Open and scheduled surveys are cancelled and no more emails are sent.",
    LeavingKind.follow_up: "Open and scheduled surveys are cancelled and no more emails are "
    "sent. Answers given so far are kept.",
    LeavingKind.data: "Surveys are cancelled and no more emails are sent. Nothing answered "
    "on or after the date is exported.",
    LeavingKind.died: "Surveys are cancelled and every queued email is stopped at once.",
}

MESSAGES = {
    "kind": "Choose what the participant stops",
    "category": "Choose the kind of reason",
    "reason": "Enter why the participant is leaving",
}


@router.get("/studies/{slug}/participants/{code}/withdraw")
def withdraw_page(
    request: Request, slug: SlugPath, code: CodePath, session: ReadSessionDep, staff: Withdrawer
) -> Response:
    """The form to record that the participant leaves: only the kinds allowed now."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    return _page(request, staff, study, participant, {}, {})


@router.post("/studies/{slug}/participants/{code}/withdraw")
def withdraw(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Withdrawer,
    form: CheckedForm,
) -> Response:
    """Record that the participant leaves, by kind, dated, with a coded reason; a
    randomized participant keeps the allocation (ITT). Errors beside their fields."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    typed = {name: text(form, name) for name in FIELDS}
    kind, on, category, problems = _read(form, typed)
    try:
        if problems:
            raise InvalidInput(problems)
        assert kind is not None and category is not None  # no problem: all were read
        participants.withdraw(
            session,
            study=study,
            code=participant.code,
            reason=typed["reason"],
            actor=staff.user,
            kind=kind,
            withdrawn_on=on,
            category=category,
        )
    except InvalidInput as invalid:
        errors = field_errors(invalid.problems, fields=FIELDS, messages=MESSAGES)
        raise FormRefused(
            _page(request, staff, study, participant, typed, errors, status_code=422)
        ) from None
    done = "stopped_intervention" if kind is LeavingKind.intervention else "withdrawn"
    return back(study, f"/participants/{participant.code}", done=done)


def _read(
    form: Form, typed: dict[str, str]
) -> tuple[LeavingKind | None, date | None, LeavingCategory | None, list[FieldProblem]]:
    """The form's kind, date and category, and what is missing or unreadable."""
    problems: list[FieldProblem] = []
    kind = _member(LeavingKind, typed["kind"])
    if kind is None:
        problems.append(FieldProblem(("kind",), MESSAGES["kind"]))
    on = None
    try:
        on = date.fromisoformat(typed["withdrawn_on"])
    except ValueError:
        words = "Enter the date as a day, month and year, like 2026-12-07"
        if not typed["withdrawn_on"]:
            words = "Enter the date the participant left"
        problems.append(FieldProblem(("withdrawn_on",), words))
    category = _member(LeavingCategory, typed["category"])
    if category is None:
        problems.append(FieldProblem(("category",), MESSAGES["category"]))
    if not typed["reason"]:
        problems.append(FieldProblem(("reason",), MESSAGES["reason"]))
    return kind, on, category, problems


Choice = TypeVar("Choice", bound=StrEnum)


def _member(options: type[Choice], value: str) -> Choice | None:
    try:
        return options(value)
    except ValueError:
        return None


def kinds_now(participant: Participant) -> list[LeavingKind]:
    """The kinds of leaving the participant may be recorded with now."""
    if participant.withdrawal_kind is None:
        try:
            lifecycle.ensure_can_withdraw(participant.code, participant.status)
        except CannotWithdraw:
            return []
    return leaving.kinds_allowed(
        participant.code,
        previous=participant.withdrawal_kind,
        randomized=participant.status == ParticipantStatus.randomized,
    )


def _page(
    request: Request,
    staff: Staff,
    study: Study,
    participant: Participant,
    typed: dict[str, str],
    errors: dict[str, str],
    *,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "participant": participant,
        "kinds": [(k.value, KIND_LABELS[k], KIND_HINTS[k]) for k in kinds_now(participant)],
        "earlier": KIND_LABELS.get(LeavingKind(participant.withdrawal_kind))
        if participant.withdrawal_kind
        else None,
        "categories": [(c.value, label) for c, label in CATEGORY_LABELS.items()],
        "typed": typed,
        "errors": errors,
    }
    return study_view(
        request, staff, study, "console/withdraw.html", context, status_code=status_code
    )
