"""Adverse events in the console: the study's list, one event's page (its state, every
version, its reporting deadlines as a countdown, the forms for a deadline reported, a
follow-up, a medical review and the closure), the new-event form from a participant's
record or from a safety alert, and the due deadlines on top of the dashboard and the
worklist.

Every rule is the safety service's (`app.safety.service`): who may read or record, what
a blind role sees of an event (review versions without their fields), the deadlines and
their due times, what acknowledging an alert with an event does. This module reads the
forms into the API's bodies and the service's answers into words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Path, Query, Request, Response
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console import record
from app.console.deps import CheckedForm, Staff, console_router, needs, study_view
from app.console.forms import FormRefused, field_errors, sentence, text, validated
from app.console.record import local
from app.console.shared import PAGE_SIZE, acting, back
from app.db.base import utcnow
from app.errors import AlertNotFound, Conflict, FieldProblem, InvalidInput
from app.participants import service as participants
from app.participants.models import Participant
from app.randomization import blinding
from app.safety import labels
from app.safety import service as safety
from app.safety.events import (
    SERIOUSNESS_CRITERIA,
    VersionKind,
)
from app.safety.schemas import (
    DeadlineReport,
    EventCreate,
    EventRead,
    EventSummary,
    VersionCreate,
    due_item,
    event_read,
    event_summary,
)
from app.studies import service as studies
from app.studies.models import Study
from app.surveys import worklist as work
from app.web.forms import Form, first
from app.web.pages import shortdate

router = console_router()

Reader = Annotated[Staff, needs(Permission.read_safety)]
Recorder = Annotated[Staff, needs(Permission.record_safety)]
EventId = Annotated[int, Path(ge=1, le=2**31 - 1)]

DUE_SHOWN = 20  # deadlines on top of a page; the events list has them all

FIELD_LABELS = {
    "AETERM": "What happened",
    "AESTDTC": "Started",
    "AEENDTC": "Ended",
    "aware_on": "Team aware on",
    "AESEV": "Severity",
    "AESER": "Serious",
    **labels.CRITERIA,
    "AEREL": "Related to the intervention",
    "AERELPROC": "Related to research procedures",
    "AEEXPECT": "Expected",
    "AEOUT": "Outcome",
    "AEACN": "Action about the intervention",
    "unanticipated": "Unanticipated problem",
    "AEDECOD": "MedDRA preferred term",
    "AEBODSYS": "MedDRA system organ class",
    "meddra_version": "MedDRA version",
}
CODED: dict[str, Mapping[str, str]] = {
    "AESEV": labels.SEVERITY,
    "AEREL": labels.RELATEDNESS,
    "AERELPROC": labels.RELATEDNESS,
    "AEOUT": labels.OUTCOME,
    "AEACN": labels.ACTION,
}
YES_NO = ("AESER", "AEEXPECT", "unanticipated", *SERIOUSNESS_CRITERIA)


def choices() -> dict[str, list[Any]]:
    """The forms' options: (code, label) per coded field; the organ classes' names."""
    return {
        "AESEV": list(labels.SEVERITY.items()),
        "AEREL": list(labels.RELATEDNESS.items()),
        "AEOUT": list(labels.OUTCOME.items()),
        "AEACN": list(labels.ACTION.items()),
        "yes_no": [("yes", "Yes"), ("no", "No")],
        "criteria": list(labels.CRITERIA.items()),
        "AEBODSYS": list(labels.ORGAN_CLASSES),
    }


def value_words(name: str, value: Any) -> str:
    """A field's value as people say it: the code's label, Yes/No, a date as written."""
    if name in YES_NO:
        return "Yes" if value is True else "No" if value is False else "Not said"
    if name in CODED:
        return CODED[name].get(value, str(value))
    if name in DATES:
        return date_words(str(value))
    return str(value)


DATES = ("AESTDTC", "AEENDTC", "aware_on")


def date_words(value: str) -> str:
    """A full or partial date as people write it: `7 Dec 2026`, `June 2026`, `2026`."""
    try:
        if len(value) == 10:
            return shortdate(date.fromisoformat(value))
        if len(value) == 7:
            return f"{date.fromisoformat(value + '-01'):%B %Y}"
    except ValueError:
        pass
    return value


def fact_rows(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a state or a version says, field by field in the form's order; the
    seriousness criteria it names as one row (those met, or "None met")."""
    rows = []
    for name, label in FIELD_LABELS.items():
        value = fields.get(name)
        if name == SERIOUSNESS_CRITERIA[0]:
            rows += _criteria_row(fields)
        if name in SERIOUSNESS_CRITERIA or value is None or value == "":
            continue
        rows.append((label, value_words(name, value)))
    return rows


def _criteria_row(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    named = [c for c in SERIOUSNESS_CRITERIA if c in fields]
    if not named:
        return []
    met = [labels.CRITERIA[c] for c in named if fields[c] is True]
    return [("Seriousness criteria", "; ".join(met) if met else "None met")]


def countdown(due_at: datetime, now: datetime) -> str:
    """A deadline's countdown in the largest whole unit: "due in 5 hours", "overdue by
    2 days" (whole units, rounded down: 47 hours late is "overdue by 1 day")."""
    seconds = int((due_at - now).total_seconds())
    late = seconds < 0
    seconds = abs(seconds)
    amount = "less than a minute"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            amount = f"{count} {unit}{'' if count == 1 else 's'}"
            break
    return f"overdue by {amount}" if late else f"due in {amount}"


def due_words(due_at: datetime, zone: ZoneInfo) -> str:
    """The exact due time in the study's zone: `8 Dec 2026 14:05 EST`."""
    shown = due_at.astimezone(zone)
    return f"{local(due_at, zone)} {shown.tzname() or ''}".strip()


# --- forms ---------------------------------------------------------------------------

TEXTS = ("AETERM", "AESTDTC", "AEENDTC", "aware_on", "AEDECOD", "AEBODSYS", "meddra_version")
CODES = ("AESEV", "AEREL", "AERELPROC", "AEOUT", "AEACN")
ANSWERS = ("AESER", "AEEXPECT", "unanticipated")
# The new-event form's fields in its order (error summary, problems beside fields).
EVENT_FIELDS = (
    "AETERM",
    "AESTDTC",
    "AEENDTC",
    "aware_on",
    "AESEV",
    "AESER",
    *SERIOUSNESS_CRITERIA,
    "AEREL",
    "AERELPROC",
    "AEEXPECT",
    "AEOUT",
    "AEACN",
    "unanticipated",
    "AEDECOD",
    "AEBODSYS",
    "meddra_version",
    "note",
)
MESSAGES = {
    "AETERM": "Enter what happened, in at most 500 characters",
    "AESEV": "Choose how severe it is",
    "AESER": "Choose whether it is serious (yes when any criterion is ticked)",
    "AEREL": "Choose how related it is to the intervention",
    "AERELPROC": "Choose how related it is to the research procedures",
    "AEEXPECT": "Choose whether it is expected",
    "AEOUT": "Choose the outcome",
    "AEACN": "Choose what was done about the intervention",
    "unanticipated": "Choose whether it is an unanticipated problem",
    "reported_on": "Enter the day the report was sent, like 2026-12-07",
    "reference": "Enter the recipient's reference, in at most 200 characters",
}


def typed_of(form: Form) -> dict[str, str]:
    """What the person typed and chose, to show again (criteria ticked as "yes")."""
    names = (*TEXTS, *CODES, *ANSWERS, *SERIOUSNESS_CRITERIA)
    typed = {name: text(form, name, 600) for name in names}
    typed["note"] = text(form, "note", 4000)
    return {name: value for name, value in typed.items() if value}


def body_of(typed: Mapping[str, str]) -> dict[str, Any]:
    """A form as the API's body: what was given, "yes"/"no" as booleans, a ticked
    criterion as true (unticked ones are left out: the service's default, false, for a
    new event; unchanged for a follow-up)."""
    body: dict[str, Any] = {}
    for name, value in typed.items():
        if name in ANSWERS:
            body[name] = {"yes": True, "no": False}.get(value, value)
        elif name in SERIOUSNESS_CRITERIA:
            body[name] = value == "yes" or value
        else:
            body[name] = value
    return body


# What to do about a field left empty (the schema says only "Field required").
MISSING = {
    "AESTDTC": "Enter when it started, like 2026-12-07 (or 2026-12, or 2026)",
    "aware_on": "Enter when the team became aware of it, like 2026-12-07",
}


def errors_of(
    invalid: InvalidInput,
    fields: Sequence[str],
    prefix: str = "",
    messages: Mapping[str, str] = MESSAGES,
) -> dict[str, str]:
    """The problems beside the fields (keyed by their ids: the form's prefix and name),
    in the form's words where it has some."""
    problems = [
        FieldProblem(p.loc, MISSING.get(str(p.loc[-1]), p.msg))
        if p.loc and p.msg in ("Field required", "required")
        else p
        for p in invalid.problems
    ]
    found = field_errors(problems, fields=fields, messages=messages)
    return {prefix + name: _plain(message) for name, message in found.items()}


def _plain(message: str) -> str:
    """A schema's message without Pydantic's "Value error, " lead."""
    return sentence(message.removeprefix("Value error, "))


# --- what pages show ------------------------------------------------------------------


def due_rows(
    session: Session, staff: Staff, study: Study, *, now: datetime, limit: int = DUE_SHOWN
) -> tuple[list[dict[str, Any]], bool]:
    """Reporting deadlines not yet met, oldest due first (so overdue ones first), for the
    top of a page: each with its countdown and exact time; and whether there are more.
    Empty for roles that do not read safety records."""
    if not staff.may(Permission.read_safety):
        return [], False
    zone = studies.definition_of(study).zone()
    found = [
        due_item(row, now=now)
        for row in safety.due(session, study=study, user=staff.user, limit=limit + 1)
    ]
    rows = [
        {
            "event_id": d.event,
            "number": d.number,
            "participant": d.participant,
            "report_to": d.report_to,
            "due_iso": d.due_at.isoformat(),
            "due_words": due_words(d.due_at, zone),
            "countdown": countdown(d.due_at, now),
            "overdue": d.overdue,
        }
        for d in found[:limit]
    ]
    return rows, len(found) > limit


def event_view(
    read: EventRead, zone: ZoneInfo, *, now: datetime, participant_link: bool
) -> dict[str, Any]:
    """An event as its page shows it: the state in words, the review beside it (for
    roles given one), every version in order with who and when, the deadlines."""
    reviewed = getattr(read, "reviewed", None)
    return {
        "id": read.id,
        "number": read.number,
        "participant": read.participant,
        "participant_link": participant_link,
        "site": read.site,
        "closed": read.status == "closed",
        "serious": read.serious,
        "facts": fact_rows(read.state),
        "reviewed": fact_rows(reviewed) if reviewed else None,
        "versions": [
            {
                "number": v.number,
                "kind": labels.VERSION_KIND.get(v.kind, str(v.kind)),
                "by": v.by or "—",
                "at": local(v.at, zone),
                "hidden": v.fields is None,
                "facts": fact_rows(v.fields or {}),
                "note": (v.fields or {}).get("note"),
            }
            for v in sorted(read.versions, key=lambda v: v.number)
        ],
        "due": [
            {
                "code": d.code,
                "report_to": d.report_to,
                "due_iso": d.due_at.isoformat(),
                "due_words": due_words(d.due_at, zone),
                "countdown": countdown(d.due_at, now),
                "overdue": d.overdue,
                "applies": d.applies,
                "reported_on": d.reported_on,
                "reference": d.reference,
            }
            for d in sorted(read.due, key=lambda d: (d.due_at, d.code))
        ],
    }


def summary_rows(
    found: Sequence[EventSummary], zone: ZoneInfo, *, participant_link: bool
) -> list[dict[str, Any]]:
    """Events as the lists show them (the study's, a participant's)."""
    return [
        {
            "id": e.id,
            "number": e.number,
            "participant": e.participant,
            "participant_link": participant_link,
            "site": e.site,
            "term": e.term or "—",
            "serious": e.serious,
            "closed": e.status == "closed",
            "overdue": e.overdue,
            "opened": local(e.opened_at, zone),
        }
        for e in found
    ]


def participant_events(
    session: Session, staff: Staff, study: Study, code: str
) -> list[dict[str, Any]] | None:
    """The participant's adverse events for their record page (None for roles that do
    not read safety records)."""
    if not staff.may(Permission.read_safety):
        return None
    found = safety.list_events(
        session, study=study, user=staff.user, participant=code, after_id=0, limit=100
    )
    zone = studies.definition_of(study).zone()
    now = utcnow()
    return summary_rows([event_summary(v, now=now) for v in found], zone, participant_link=True)


# --- pages ---------------------------------------------------------------------------

DONE = {
    "opened": "The adverse event is recorded.",
    "follow_up": "The follow-up is saved.",
    "review": "The medical review is saved.",
    "closure": "The event is closed.",
    "reported": "The report is recorded: that deadline is met.",
}
StatusChoice = Annotated[str, Query(alias="status", pattern="^(open|closed|)$")]
SeriousChoice = Annotated[str, Query(pattern="^(yes|no|)$")]


@router.get("/studies/{slug}/events")
def events_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Reader,
    status: StatusChoice = "",
    serious: SeriousChoice = "",
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """The study's adverse events (of the user's sites), open or closed, serious or not,
    with the reporting deadlines not yet met on top."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    now = utcnow()
    found = safety.list_events(
        session,
        study=study,
        user=staff.user,
        open_only={"open": True, "closed": False}.get(status),
        serious={"yes": True, "no": False}.get(serious),
        after_id=after,
        limit=PAGE_SIZE + 1,
    )
    shown = [event_summary(v, now=now) for v in found[:PAGE_SIZE]]
    due, more = due_rows(session, staff, study, now=now)
    zone = studies.definition_of(study).zone()
    link = staff.may(Permission.read_participants)
    context = {
        "rows": summary_rows(shown, zone, participant_link=link),
        "query": {"status": status, "serious": serious},
        "next_after": shown[-1].id if len(found) > PAGE_SIZE else None,
        "due_rows": due,
        "due_more": more,
    }
    return study_view(request, staff, study, "console/events.html", context)


@router.get("/studies/{slug}/events/{event_id}")
def event_page(
    request: Request,
    slug: SlugPath,
    event_id: EventId,
    session: ReadSessionDep,
    staff: Reader,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """One event: its state, every version with who and when, the deadlines' countdown,
    and the forms the role may use (a review only for roles that may see arms)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return _event(request, session, staff, study, event_id, done=done)


def _event(
    request: Request,
    session: Session,
    staff: Staff,
    study: Study,
    event_id: int,
    *,
    done: str | None = None,
    form: str | None = None,
    typed: Mapping[str, Mapping[str, str]] | None = None,
    errors: Mapping[str, str] | None = None,
) -> Response:
    definition = studies.definition_of(study)
    policy = blinding.policy_for(staff.user.role, definition)
    now = utcnow()
    found = safety.get_event(session, study=study, event_id=event_id, user=staff.user)
    read = event_read(found, arms=policy.arms, now=now)
    context = {
        "event": event_view(
            read,
            definition.zone(),
            now=now,
            participant_link=staff.may(Permission.read_participants),
        ),
        "may_record": staff.may(Permission.record_safety),
        "may_report": safety.may_report(staff.user),
        "may_review": staff.may(Permission.review_safety) and policy.arms,
        "choices": choices(),
        "notice": _notice(done, read),
        "form": form,
        "typed": typed or {},
        "errors": errors or {},
    }
    status_code = 422 if errors else 200
    return study_view(request, staff, study, "console/event.html", context, status_code=status_code)


def _notice(done: str | None, read: EventRead) -> str | None:
    """What the page says was just done (opening a serious event emails the contacts)."""
    notice = DONE.get(done or "")
    if notice and done == "opened" and read.serious:
        notice += " It is serious: the study's safety contacts are emailed (no health details)."
    return notice


@router.get("/studies/{slug}/participants/{code}/events/new")
def new_event_page(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: ReadSessionDep,
    staff: Recorder,
    alert: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """The new-event form; from a safety alert, filled in from it (the term is the
    rule's text, the onset the survey's completion day, awareness the alert's day)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    values: dict[str, str] = {}
    if alert is not None:
        prefill = safety.prefill_from_alert(session, study=study, alert_id=alert, user=staff.user)
        values = {k: _typed(k, v) for k, v in prefill.items() if v is not None}
    else:
        values["aware_on"] = _today(study).isoformat()
    return _new_event(request, session, staff, study, participant, alert, values, {})


@router.post("/studies/{slug}/participants/{code}/events")
def open_event(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Recorder,
    form: CheckedForm,
) -> Response:
    """Open the event (and acknowledge its alert, if it came from one); the form again
    with each problem beside its field."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    typed = typed_of(form)
    alert = _alert_id(first(form, "alert"))
    try:
        body = {**body_of(typed), **({"alert": alert} if alert else {})}
        opened = safety.open_event(
            session,
            study=study,
            code=participant.code,
            data=validated(EventCreate, body),
            actor=staff.user,
        )
    except InvalidInput as invalid:
        errors = errors_of(invalid, EVENT_FIELDS)
        page = _new_event(
            request, session, staff, study, participant, alert, typed, errors, status_code=422
        )
        raise FormRefused(page) from None
    return back(study, f"/events/{opened.event.id}", done="opened")


@router.post("/studies/{slug}/events/{event_id}/versions")
def add_version(
    request: Request,
    slug: SlugPath,
    event_id: EventId,
    session: SessionDep,
    staff: Reader,
    form: CheckedForm,
) -> Response:
    """A follow-up, a medical review or the closure (who may add which is the
    service's rule: a review needs a role that may see arms)."""
    study = acting(session, slug, staff)
    kind = text(form, "kind", 16)
    if kind not in VERSION_FORMS:
        kind = VersionKind.follow_up.value
    prefix, names = VERSION_FORMS[kind]
    typed = {k: v for k, v in typed_of(form).items() if names is None or k in names}
    try:
        safety.add_version(
            session,
            study=study,
            event_id=event_id,
            data=validated(VersionCreate, {"kind": kind, **body_of(typed)}),
            actor=staff.user,
        )
    except InvalidInput as invalid:
        fields = list(names or EVENT_FIELDS)
        words = CLOSURE_MESSAGES if kind == VersionKind.closure else MESSAGES
        errors = errors_of(invalid, fields, prefix, words)
        page = _event(
            request,
            session,
            staff,
            study,
            event_id,
            form=kind,
            typed={prefix: typed},
            errors=errors,
        )
        raise FormRefused(page) from None
    return back(study, f"/events/{event_id}", done=kind)


CLOSURE_MESSAGES = {
    **MESSAGES,
    "AEOUT": "Choose the final outcome (an event still recovering stays open)",
}
# Each version form: its fields' id prefix, and the fields it sends (None: any).
VERSION_FORMS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    VersionKind.follow_up.value: ("followup-", None),
    VersionKind.review.value: ("review-", ("AEREL", "AERELPROC", "AEEXPECT", "note")),
    VersionKind.closure.value: ("closure-", ("AEOUT", "AEENDTC", "aware_on", "note")),
}


@router.post("/studies/{slug}/events/{event_id}/deadlines/{code}/report")
def report_deadline(
    request: Request,
    slug: SlugPath,
    event_id: EventId,
    code: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    staff: Reader,  # the service says who may (safety.may_report)
    form: CheckedForm,
) -> Response:
    """Record that the event was reported (on a day, with the recipient's reference):
    the deadline is met."""
    study = acting(session, slug, staff)
    typed = {name: text(form, name, 300) for name in ("reported_on", "reference")}
    body = {k: v for k, v in typed.items() if v}
    try:
        report = validated(DeadlineReport, body)
        safety.report_deadline(
            session,
            study=study,
            event_id=event_id,
            code=code,
            reported_on=report.reported_on,
            reference=report.reference,
            actor=staff.user,
        )
    except InvalidInput as invalid:
        prefix = f"report-{code}-"
        errors = errors_of(invalid, ["reported_on", "reference"], prefix)
        page = _event(
            request, session, staff, study, event_id, typed={prefix: typed}, errors=errors
        )
        raise FormRefused(page) from None
    return back(study, f"/events/{event_id}", done="reported")


def _new_event(
    request: Request,
    session: Session,
    staff: Staff,
    study: Study,
    participant: Participant,
    alert_id: int | None,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    status_code: int = 200,
) -> Response:
    context = {
        "participant": participant,
        "alert": _alert_facts(session, staff, study, participant, alert_id),
        "values": values,
        "errors": errors,
        "choices": choices(),
    }
    return study_view(
        request, staff, study, "console/event_new.html", context, status_code=status_code
    )


def _alert_facts(
    session: Session, staff: Staff, study: Study, participant: Participant, alert_id: int | None
) -> dict[str, Any] | None:
    """The alert an event is opened from, as the record page shows it: the rule, the
    question and the answer that met it, when it was raised."""
    if alert_id is None:
        return None
    user = staff.user
    found = [
        a
        for a in work.alerts(
            session,
            study=study,
            user=user,
            open_only=False,
            after_id=alert_id - 1,
            limit=1,
            participant_code=participant.code,
        )
        if a.id == alert_id
    ]
    if not found:
        raise AlertNotFound(f"no alert {alert_id} for participant {participant.code}")
    if found[0].acknowledged_at is not None:
        raise Conflict("the alert was already acknowledged")
    definition = studies.definition_of(study)
    policy = blinding.policy_for(user.role, definition)
    detail = participants.detail(session, study=study, participant=participant, user=user)
    read = record.read_surveys(session, study=study, detail=detail, user=user)
    return record.alerts(definition, policy, found, read, now=utcnow())[0]


def _typed(name: str, value: Any) -> str:
    """A prefilled value as the form shows it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _alert_id(value: str) -> int | None:
    """The form's alert (a number), if it names one."""
    value = value.strip()
    if (
        not value.isascii()
        or not value.isdigit()
        or len(value) > 10
        or not 1 <= int(value) <= 2**31 - 1
    ):
        return None
    return int(value)


def _today(study: Study) -> date:
    return utcnow().astimezone(studies.definition_of(study).zone()).date()
