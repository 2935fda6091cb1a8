"""Protocol deviations in the console: the study's list (proposals to decide first, with
Confirm and Dismiss), a page per deviation with its versions and the next one (a
decision, a follow-up), the form that records one from a participant's record, and a
button that looks for proposals now. Each page calls the service the API calls
(`safety.deviations`), with the signed-in user as the actor."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs, study_view
from app.console.forms import FormRefused, field_errors, text, validated
from app.console.shared import acting, back
from app.errors import InvalidInput
from app.participants import service as participants
from app.participants.models import Participant
from app.safety import deviations as service
from app.safety import labels
from app.safety.deviation_rules import DeviationState
from app.safety.deviation_schemas import (
    MAX_TEXT,
    DeviationCreate,
    DeviationRead,
    DeviationVersionCreate,
)
from app.studies import service as studies
from app.studies.models import Study
from app.web.forms import Form
from app.web.pages import longdate

router = console_router()

Reader = Annotated[Staff, needs(Permission.read_safety)]
Recorder = Annotated[Staff, needs(Permission.record_safety)]
DeviationId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # the column is an INTEGER

LIST_LIMIT = 100

STATE_WORDS = {
    DeviationState.proposed: "to decide",
    DeviationState.confirmed: "confirmed",
    DeviationState.dismissed: "dismissed",
}
KIND_WORDS = {
    "proposed": "Proposed by Trialdesk",
    "initial": "Recorded",
    "follow_up": "Follow-up",
    "confirmation": "Confirmed",
    "dismissal": "Dismissed",
}
FIELD_WORDS = {
    "category": "Category",
    "occurred_on": "Date",
    "description": "What happened",
    "important": "Important deviation",
    "corrective_action": "Corrective action",
}
DONE = {
    "recorded": "The deviation is recorded.",
    "confirmed": "The deviation is confirmed.",
    "dismissed": "The proposal is dismissed.",
    "followed_up": "The follow-up is recorded.",
    "none_found": "No new deviation was found.",
    "found": "New proposals were found: decide each below.",
}

NEW_FIELDS = ("category", "occurred_on", "description", "important", "corrective_action")
NEW_MESSAGES = {
    "category": "Choose the kind of deviation",
    "description": "Describe what happened",
    "important": "Say whether it is an important deviation",
}
VERSION_FIELDS = ("kind", "important", "corrective_action", "note")


@router.get("/studies/{slug}/deviations")
def deviations_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Reader,
    participant: Annotated[str, Query(max_length=32)] = "",
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Proposals to decide (oldest first), then the deviations recorded (newest first)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    common: dict[str, Any] = {
        "study": study,
        "user": staff.user,
        "participant": participant or None,
        "limit": LIST_LIMIT,
    }
    proposed = service.list_deviations(session, state=DeviationState.proposed, **common)
    decided = service.list_deviations(session, newest_first=True, decided_only=True, **common)
    context = {
        "proposed": proposed,
        "decided": decided,
        "filtered": participant,
        "limit": LIST_LIMIT,
        "notice": DONE.get(done or ""),
        **_words(),
    }
    return study_view(request, staff, study, "console/deviations.html", context)


@router.post("/studies/{slug}/deviations/propose")
def look_now(slug: SlugPath, session: SessionDep, staff: Recorder, form: CheckedForm) -> Response:
    """Look for proposals now, at the user's sites (the scheduler does at every pass)."""
    study = acting(session, slug, staff)
    found = service.look_for_deviations(session, study=study, actor=staff.user)
    return back(study, "/deviations", done="found" if found else "none_found")


@router.get("/studies/{slug}/deviations/{deviation_id}")
def deviation_page(
    request: Request,
    slug: SlugPath,
    deviation_id: DeviationId,
    session: ReadSessionDep,
    staff: Reader,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """One deviation, its versions oldest first, and the form for the next version."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    deviation = service.get_deviation(
        session, study=study, deviation_id=deviation_id, user=staff.user
    )
    return _deviation_page(request, staff, study, deviation, {}, {}, notice=DONE.get(done or ""))


@router.post("/studies/{slug}/deviations/{deviation_id}/versions")
def add_version(
    request: Request,
    slug: SlugPath,
    deviation_id: DeviationId,
    session: SessionDep,
    staff: Recorder,
    form: CheckedForm,
) -> Response:
    """The next version from a form: `kind` confirmation, dismissal or follow_up, with
    a note, and for a confirmation or follow-up the important flag and the
    corrective action when given. Errors beside their fields on the deviation's page."""
    study = acting(session, slug, staff)
    typed = {name: form_text(form, name) for name in VERSION_FIELDS}
    kind = typed["kind"]
    document: dict[str, Any] = {"kind": kind}
    if typed["note"]:
        document["note"] = typed["note"]
    if kind != "dismissal":
        if typed["important"] in ("yes", "no"):
            document["important"] = typed["important"] == "yes"
        if typed["corrective_action"]:
            document["corrective_action"] = typed["corrective_action"]
    try:
        body = validated(DeviationVersionCreate, document)
        service.add_version(
            session, study=study, deviation_id=deviation_id, data=body, actor=staff.user
        )
    except InvalidInput as invalid:
        messages = {"kind": "Choose whether this is a protocol deviation"}
        if kind == "dismissal":
            messages["note"] = "Say why this is no deviation"
        errors = field_errors(invalid.problems, fields=VERSION_FIELDS, messages=messages)
        current = service.get_deviation(
            session, study=study, deviation_id=deviation_id, user=staff.user
        )
        page = _deviation_page(
            request, staff, study, current, typed, errors, status_code=422, tried=kind
        )
        raise FormRefused(page) from None
    done = {"confirmation": "confirmed", "dismissal": "dismissed"}.get(kind, "followed_up")
    return back(study, f"/deviations/{deviation_id}", done=done)


@router.get("/studies/{slug}/participants/{code}/deviations/new")
def new_deviation_page(
    request: Request, slug: SlugPath, code: CodePath, session: ReadSessionDep, staff: Recorder
) -> Response:
    """The form to record a deviation of the participant."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    return _new_page(request, staff, study, participant, {}, {})


@router.post("/studies/{slug}/participants/{code}/deviations/new")
def record_deviation(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Recorder,
    form: CheckedForm,
) -> Response:
    """Record a deviation of the participant; errors beside their fields."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    typed = {name: form_text(form, name) for name in NEW_FIELDS}
    document = _new_document(typed)
    try:
        body = validated(DeviationCreate, document)
        made = service.record_deviation(
            session, study=study, code=participant.code, data=body, actor=staff.user
        )
    except InvalidInput as invalid:
        messages = dict(NEW_MESSAGES)
        if not _is_date(typed["occurred_on"]):  # else the service's words (in the future...)
            messages["occurred_on"] = "Enter the date it happened, like 2026-12-07"
        errors = field_errors(invalid.problems, fields=NEW_FIELDS, messages=messages)
        page = _new_page(request, staff, study, participant, typed, errors, status_code=422)
        raise FormRefused(page) from None
    return back(study, f"/deviations/{made.id}", done="recorded")


def _new_document(typed: dict[str, str]) -> dict[str, Any]:
    """The form as the API's body: what was left empty is missing (a required field
    then says so), the important flag from its yes/no radios."""
    document: dict[str, Any] = {
        name: typed[name]
        for name in ("category", "occurred_on", "description", "corrective_action")
        if typed[name]
    }
    if typed["important"] in ("yes", "no"):
        document["important"] = typed["important"] == "yes"
    return document


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _words() -> dict[str, Any]:
    return {
        "category_labels": labels.DEVIATION_CATEGORY,
        "state_words": {s.value: words for s, words in STATE_WORDS.items()},
    }


def _deviation_page(
    request: Request,
    staff: Staff,
    study: Study,
    deviation: DeviationRead,
    typed: dict[str, str],
    errors: dict[str, str],
    *,
    status_code: int = 200,
    notice: str | None = None,
    tried: str | None = None,
) -> Response:
    versions = [
        {
            "number": v.number,
            "kind": KIND_WORDS.get(v.kind.value, v.kind.value),
            "by": v.recorded_by,
            "at": v.recorded_at,
            "note": v.note,
            "fields": [
                (FIELD_WORDS.get(name, name), _shown(name, value))
                for name, value in v.fields.items()
                if value is not None
            ],
        }
        for v in deviation.versions
    ]
    context: dict[str, Any] = {
        "d": deviation,
        "versions": versions,
        "typed": typed,
        "errors": errors,
        "tried": tried,
        "notice": notice,
        **_words(),
    }
    return study_view(
        request, staff, study, "console/deviation.html", context, status_code=status_code
    )


def _shown(name: str, value: object) -> str:
    if name == "important":
        return "Yes" if value else "No"
    if name == "occurred_on":
        try:
            return longdate(date.fromisoformat(str(value)))
        except ValueError:
            return str(value)
    if name == "category":
        return labels.DEVIATION_CATEGORY.get(str(value), str(value))
    return str(value)


def _new_page(
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
        "categories": list(labels.DEVIATION_CATEGORY.items()),
        "typed": typed,
        "errors": errors,
    }
    return study_view(
        request, staff, study, "console/deviation_new.html", context, status_code=status_code
    )


def form_text(form: Form, name: str) -> str:
    """A field of a deviation form (at most the API's bound plus one, so a longer text
    is refused by the same check, not silently cut)."""
    return text(form, name, MAX_TEXT + 1)
