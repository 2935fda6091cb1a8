"""The staff console's study pages: dashboard, enrollment, participants, worklist,
exports and reports. Each page calls the services the API calls, with the signed-in
user as the actor: no rule, permission or blinding decision of its own."""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.audit import service as audit
from app.auth.permissions import Permission, reachable_sites
from app.console.deps import (
    PREFIX,
    CheckedForm,
    Staff,
    StaffDep,
    console_router,
    needs,
    not_cross_site,
    send_soon,
    study_view,
    view,
)
from app.db.base import utcnow
from app.errors import (
    Conflict,
    FieldProblem,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
)
from app.exports import downloads
from app.exports.dataset import Shape
from app.exports.formats import cell
from app.exports.service import Format
from app.idempotency import service as idempotency
from app.idempotency.service import StoredResponse
from app.participants import service as participants
from app.participants.lifecycle import ParticipantStatus
from app.participants.schemas import ParticipantCreate
from app.randomization import blinding
from app.reports import service as reports
from app.reports.flow import ConsortFlow
from app.reports.svg import consort_svg, description
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.studies.models import Study
from app.surveys import worklist as work
from app.surveys.service import timepoint_name
from app.surveys.worklist import WorkSort, WorkStatus
from app.web.forms import Form, first

PAGE_SIZE = 50
CSV_LIMIT = 100_000  # rows of one worklist download
MAX_TEXT = 2000

router = console_router()

Reader = Annotated[Staff, needs(Permission.read_participants)]


# --- what the study pages share ------------------------------------------------------


def _back(study: Study, path: str, *, done: str | None = None) -> RedirectResponse:
    target = f"{PREFIX}/studies/{study.slug}{path}"
    if done:
        target += f"?done={done}"
    return RedirectResponse(target, status_code=303)


def _text(form: Form, name: str) -> str:
    return first(form, name).strip()[:MAX_TEXT]


# --- home -----------------------------------------------------------------------------


@router.get("")
def home(request: Request, session: ReadSessionDep, staff: StaffDep) -> Response:
    """The studies the user works on."""
    found = studies.list_studies(session, user=staff.user, after_id=0, limit=1000)
    reachable = reachable_sites(staff.user)
    sites = {
        s.slug: sorted(x.code for x in s.sites if reachable is None or x.id in reachable)
        for s in found
    }
    return view(request, "console/home.html", {"studies": found, "sites": sites})


# --- dashboard ------------------------------------------------------------------------


@router.get("/studies/{slug}")
def dashboard(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Annotated[Staff, needs(Permission.read_reports)],
) -> Response:
    """Recruitment against target per site, randomized per group, retention, the CONSORT
    diagram; for roles that see participants, open safety alerts and failed emails."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user)
    flow = reports.consort(session, study=study, user=user)
    context: dict[str, Any] = {
        "recruitment": reports.recruitment(session, study=study),
        "flow": flow,
        "flow_text": description(flow),
        "retention": _retention_rows(reports.retention(session, study=study, user=user), flow),
    }
    if staff.may(Permission.read_participants):
        context["alerts"] = work.alerts(
            session, study=study, user=user, open_only=True, after_id=0, limit=100
        )
        context["failed"] = work.messages_failed(session, study=study, user=user, limit=100)
        context["sites"] = {s.id: s.code for s in study.sites}
    return study_view(request, staff, study, "console/dashboard.html", context)


def _retention_rows(rows: Sequence[reports.Retention], flow: ConsortFlow) -> list[dict[str, Any]]:
    labels = {g.code: g.label for g in flow.groups}
    return [
        {
            "timepoint": timepoint_name(r.timepoint),
            "group": labels.get(r.group, r.group),
            "completed": r.completed,
            "missed": r.missed,
            "pending": r.pending,
            "rate": "—" if r.rate is None else f"{r.rate:.0%}",
        }
        for r in rows
    ]


@router.get("/studies/{slug}/reports/consort.svg", response_class=Response)
def consort_diagram(
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Annotated[Staff, needs(Permission.read_reports)],
) -> Response:
    """The CONSORT flow diagram (SVG), groups coded as the role sees them."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    flow = reports.consort(session, study=study, user=staff.user)
    return Response(
        consort_svg(flow),
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/studies/{slug}/reports")
def reports_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Annotated[Staff, needs(Permission.read_reports)],
) -> Response:
    """CONSORT counts and diagram, retention and balance, with the JSON and SVG links."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user)
    flow = reports.consort(session, study=study, user=user)
    balance = reports.balance(session, study=study, user=user)
    groups = [(g.code, g.label) for g in flow.groups]
    context = {
        "flow": flow,
        "flow_text": description(flow),
        "retention": _retention_rows(reports.retention(session, study=study, user=user), flow),
        "balance": balance,
        "groups": groups,
    }
    return study_view(request, staff, study, "console/reports.html", context)


# --- enrollment -----------------------------------------------------------------------


def _enroll_sites(study: Study, staff: Staff) -> list[tuple[str, str]]:
    reachable = reachable_sites(staff.user)
    return [
        (s.code, f"{s.name} ({s.code})")
        for s in sorted(study.sites, key=lambda s: s.code)
        if reachable is None or s.id in reachable
    ]


def _may_randomize_now(definition: StudyDefinition, staff: Staff) -> bool:
    return not definition.randomization.requires_completed and staff.may(Permission.randomize)


def _enroll_form(
    request: Request,
    staff: Staff,
    study: Study,
    *,
    form: Form | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    definition = studies.definition_of(study)
    sites = _enroll_sites(study, staff)
    values: dict[str, str] = {name: values[0] for name, values in (form or {}).items() if values}
    if len(sites) == 1:
        values.setdefault("site", sites[0][0])
    if len(definition.consent_versions) == 1:
        values.setdefault("consent", definition.consent_versions[0])
    context = {
        "sites": sites,
        "values": values,
        "errors": errors or {},
        "form_id": values.get("form_id") or secrets.token_urlsafe(16),
        "randomize_now": _may_randomize_now(definition, staff),
    }
    return study_view(
        request, staff, study, "console/enroll.html", context, status_code=status_code
    )


@router.get("/studies/{slug}/enroll")
def enroll_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Annotated[Staff, needs(Permission.enroll)],
) -> Response:
    """The screening and enrollment form, made from the study's definition."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return _enroll_form(request, staff, study)


def _enrollment(definition: StudyDefinition, form: Form) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's enrollment document from the form, and what is missing (by field)."""
    errors: dict[str, str] = {}
    screening: dict[str, bool] = {}
    for criterion in definition.eligibility:
        answer = first(form, f"screening-{criterion.code}")
        if answer in ("yes", "no"):
            screening[criterion.code] = answer == "yes"
        else:
            errors[f"screening-{criterion.code}"] = (
                f"Select yes or no: {_lower_first(criterion.text)}"
            )
    if not first(form, "site"):
        errors["site"] = "Choose the site the participant is enrolled at"
    # Unanswered questions count as met: the eligible person's fields are asked for
    # until an answer rules the person out.
    eligible = all(screening.get(c.code, c.must_be) == c.must_be for c in definition.eligibility)
    strata = {
        factor.code: first(form, f"strata-{factor.code}")
        for factor in definition.randomization.strata
        if first(form, f"strata-{factor.code}")
    }
    contact = {key: _text(form, f"contact-{key}") for key in ("name", "email", "phone")}
    document: dict[str, Any] = {"site": first(form, "site")[:12], "screening": screening}
    if eligible:
        if not first(form, "consent"):
            errors["consent"] = "Choose the consent form version the participant signed"
        for factor in definition.randomization.strata:
            if factor.code not in strata:
                errors[f"strata-{factor.code}"] = f"Choose the participant's {_words(factor.code)}"
        if not contact["name"]:
            errors["contact-name"] = "Enter the participant's name"
        document["consent"] = {"version": first(form, "consent")[:64]}
        document["strata"] = strata
        document["contact"] = {k: v for k, v in contact.items() if v}
    return document, errors


def _in_form_order(definition: StudyDefinition, errors: dict[str, str]) -> dict[str, str]:
    """The errors in the order their fields come on the form (as the summary lists them)."""
    order = [
        "site",
        *(f"screening-{c.code}" for c in definition.eligibility),
        "consent",
        *(f"strata-{f.code}" for f in definition.randomization.strata),
        "contact-name",
        "contact-email",
        "contact-phone",
    ]
    rank = {field: i for i, field in enumerate(order)}
    return dict(sorted(errors.items(), key=lambda item: rank.get(item[0], len(order))))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _words(code: str) -> str:
    return code.replace("_", " ")


_FIELD_MESSAGES = {
    "contact-email": "Enter an email address like name@example.org, or leave it empty",
    "contact-phone": "Enter a phone number of up to 64 characters",
    "contact-name": "Enter the participant's name (up to 200 characters)",
}


def _field_of(loc: Sequence[str | int]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    if not parts:
        return "site"
    if parts[0] in ("screening", "strata", "contact") and len(parts) > 1:
        return f"{parts[0]}-{parts[1]}"
    return parts[0]


def _problems(problems: Sequence[FieldProblem]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in problems:
        field = _field_of(problem.loc)
        errors.setdefault(field, _FIELD_MESSAGES.get(field, _sentence(problem.msg)))
    return errors


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


@router.post("/studies/{slug}/enroll")
def enroll(
    request: Request,
    slug: SlugPath,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.enroll)],
    form: CheckedForm,
) -> Response:
    """Screen and enroll (then randomize, if asked and the study allows it); the same
    form sent twice enrolls once, and the second send goes to the participant."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user, lock=studies.RowLock.for_no_key_update)
    definition = studies.definition_of(study)
    document, errors = _enrollment(definition, form)
    try:
        data = ParticipantCreate.model_validate(document)
    except ValidationError as invalid:
        found = [FieldProblem(tuple(e["loc"]), e["msg"]) for e in invalid.errors()]
        errors = _in_form_order(definition, _problems(found) | errors)
    if errors:
        return _enroll_form(request, staff, study, form=form, errors=errors, status_code=422)
    form_id = first(form, "form_id")[:64] or secrets.token_urlsafe(16)
    content = json.dumps(
        sorted((k, v) for k, v in form.items() if k != "csrf_token"), ensure_ascii=False
    ).encode()
    claim = _claim_form(
        session, user_id=user.id, form_id=form_id, path=request.url.path, content=content
    )
    if isinstance(claim, StoredResponse):
        return RedirectResponse(claim.body, status_code=303)
    try:
        participant = participants.enroll(session, study=study, data=data, actor=user)
    except InvalidInput as invalid:
        session.rollback()  # nothing of this request is kept, the claim included
        return _enroll_form(
            request, staff, study, form=form, errors=_problems(invalid.problems), status_code=422
        )
    done = "enrolled" if participant.status == ParticipantStatus.enrolled else "screened"
    if (
        done == "enrolled"
        and first(form, "randomize") == "yes"
        and _may_randomize_now(definition, staff)
    ):
        participants.randomize(session, study=study, code=participant.code, actor=user)
        done = "randomized"
    target = f"{PREFIX}/studies/{study.slug}/participants/{participant.code}?done={done}"
    idempotency.complete(
        session, claim_id=claim, response=StoredResponse(303, target, "text/plain"), now=utcnow()
    )
    return RedirectResponse(target, status_code=303)


FORM_TTL = timedelta(hours=24)


def _claim_form(
    session: Session, *, user_id: int, form_id: str, path: str, content: bytes
) -> int | StoredResponse:
    """Claim this copy of the form, in the request's transaction: a second send of it
    (a double click, a reload) waits for the first and then finds its answer; the same
    copy sent again with other answers (a page restored by the browser, then edited) is
    refused rather than taken for the first."""
    fingerprint = idempotency.fingerprint(method="POST", path=path, body=content)
    for _ in range(2):
        try:
            return idempotency.claim(
                session,
                scope=f"console:{user_id}",
                key=form_id,
                fingerprint=fingerprint,
                now=utcnow(),
                ttl=FORM_TTL,
            )
        except IdempotencyKeyReused:
            raise Conflict(
                "this form was already sent, with other answers: open the enrollment form "
                "again to enroll another person"
            ) from None
        except IdempotencyKeyInProgress:
            continue  # the first send committed meanwhile: its answer is there now
    raise IdempotencyKeyInProgress("this form is being sent; look at the participants list")


# --- participants ---------------------------------------------------------------------


@router.get("/studies/{slug}/participants")
def participants_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Reader,
    status: ParticipantStatus | None = None,
    site: Annotated[str | None, Query(max_length=12)] = None,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """Participants of the user's sites, oldest first, a page at a time."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    rows = participants.list_participants(
        session,
        study=study,
        user=staff.user,
        site=site or None,
        status=status,
        after_id=after,
        limit=PAGE_SIZE,
    )
    context = {
        "rows": rows,
        "status": status.value if status else "",
        "site": site or "",
        "sites": _enroll_sites(study, staff),
        "statuses": [s.value for s in ParticipantStatus],
        "next_after": rows[-1].id if len(rows) == PAGE_SIZE else None,
    }
    return study_view(request, staff, study, "console/participants.html", context)


_DONE = {
    "enrolled": "The participant is enrolled.",
    "screened": "The screening is recorded: the participant is not eligible.",
    "randomized": "The participant is randomized.",
    "withdrawn": "The withdrawal is recorded.",
    "reissued": "The survey has a new link. The old link no longer works.",
    "resent": "The invitation will be emailed again in a moment.",
    "relinked": "If the participant has this survey open, a new link is on its way to them "
    "by email. Any older link no longer works.",
    "resent_if_open": "If the participant has this survey open, the invitation will be "
    "emailed again in a moment.",
    "acknowledged": "The alert is acknowledged.",
    "unblinded": "The unblinding is recorded.",
}


@router.get("/studies/{slug}/participants/{code}")
def participant_page(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: ReadSessionDep,
    staff: Reader,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """One participant: status, strata, contact, surveys with their links, alerts, the
    actions the role may take, and the participant's history."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user)
    participant = participants.get_participant(session, study=study, code=code, user=user)
    detail = participants.detail(session, study=study, participant=participant, user=user)
    base_url: str = request.app.state.settings.base_url
    definition = studies.definition_of(study)
    policy = blinding.policy_for(user.role, definition)
    history = audit.list_records(
        session, study_id=study.id, after_seq=0, limit=500, entity=participant.code
    )
    context = {
        "participant": participant,
        "detail": detail,
        "surveys": [
            {
                "timepoint": s.timepoint,
                "name": timepoint_name(s.timepoint),
                "status": s.status,
                "opens_on": s.opens_on,
                "closes_on": s.closes_on,
                "link": f"{base_url}/s/{s.token}" if s.token else None,
                "link_withheld": s.link_withheld,
            }
            for s in detail.surveys
        ],
        "alerts": work.alerts(
            session,
            study=study,
            user=user,
            open_only=False,
            after_id=0,
            limit=100,
            participant_code=participant.code,
        ),
        "history": [
            {
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "reason": r.reason if policy.shows_reason(r.action) else None,
            }
            for r in history
            if policy.shows_history(r.action, r.entity_id)
        ],
        "notice": _DONE.get(done or ""),
        "site": next(s for s in study.sites if s.id == participant.site_id),
        "waiting_for": [
            timepoint_name(s.timepoint)
            for s in detail.surveys
            if s.timepoint in definition.randomization.requires_completed
            and s.status != "completed"
        ],
        "zone": definition.zone(),
        "action_words": _ACTION_WORDS,
    }
    return study_view(request, staff, study, "console/participant.html", context)


_ACTION_WORDS = {
    "participant.screened": "Screened",
    "participant.enrolled": "Enrolled",
    "participant.randomized": "Randomized",
    "participant.withdrawn": "Withdrawn",
    "participant.unblinded": "Arm revealed (unblinded)",
    "survey.saved": "Survey answers saved",
    "survey.submitted": "Survey sent",
    "survey.link_reissued": "New survey link",
    "survey.invitation_resent": "Invitation emailed again",
}


def _acting(session: Session, slug: str, staff: Staff) -> Study:
    return studies.get_study(
        session, slug=slug, user=staff.user, lock=studies.RowLock.for_no_key_update
    )


@router.post("/studies/{slug}/participants/{code}/randomize")
def randomize(
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.randomize)],
    form: CheckedForm,
) -> Response:
    """Randomize the participant (409 page if not enrolled, already randomized, or a
    required survey is not complete)."""
    study = _acting(session, slug, staff)
    participants.randomize(session, study=study, code=code, actor=staff.user)
    return _back(study, f"/participants/{code}", done="randomized")


@router.post("/studies/{slug}/participants/{code}/withdraw")
def withdraw(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.withdraw)],
    form: CheckedForm,
) -> Response:
    """Record a withdrawal with its reason; the participant's surveys are cancelled."""
    study = _acting(session, slug, staff)
    reason = _text(form, "reason")
    if not reason:
        return _reason_missing(request, session, staff, study, code, "reason")
    participants.withdraw(session, study=study, code=code, reason=reason, actor=staff.user)
    return _back(study, f"/participants/{code}", done="withdrawn")


def _reason_missing(
    request: Request,
    session: Session,
    staff: Staff,
    study: Study,
    code: str,
    field: str,
    about: str | None = None,
) -> Response:
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    messages = {
        "reason": "Enter why the participant is withdrawing",
        "note": "Enter a note on how the alert was dealt with",
    }
    context = {
        "participant": participant,
        "field": field,
        "message": messages[field],
        "action": str(request.url.path),
        "about": about,
    }
    return study_view(request, staff, study, "console/reason_needed.html", context, status_code=422)


Timepoint = Annotated[str, Path(max_length=64)]


@router.post("/studies/{slug}/participants/{code}/surveys/{timepoint}/reissue")
def reissue(
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.enroll)],
    form: CheckedForm,
) -> Response:
    """Give the survey a new link; the old one stops working (a link withheld from a
    blind role is emailed to the participant; see the API's reissue)."""
    study = _acting(session, slug, staff)
    token = participants.reissue_link(
        session, study=study, code=code, timepoint=timepoint, actor=staff.user
    )
    return _back(study, f"/participants/{code}", done="reissued" if token else "relinked")


@router.post("/studies/{slug}/participants/{code}/surveys/{timepoint}/resend")
def resend(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.enroll)],
    form: CheckedForm,
) -> Response:
    """Email the survey's invitation again (see the API's resend for a blind role)."""
    study = _acting(session, slug, staff)
    told = participants.resend_invitation(
        session, study=study, code=code, timepoint=timepoint, actor=staff.user
    )
    done = "resent" if told else "resent_if_open"
    return send_soon(request, _back(study, f"/participants/{code}", done=done))


@router.post("/studies/{slug}/participants/{code}/alerts/{alert_id}/acknowledge")
def acknowledge(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    alert_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.acknowledge_alerts)],
    form: CheckedForm,
) -> Response:
    """Acknowledge a safety alert with a note on what was done."""
    study = _acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    note = _text(form, "note")
    if not note:
        alert = next(
            (
                a
                for a in work.alerts(
                    session,
                    study=study,
                    user=staff.user,
                    open_only=False,
                    after_id=alert_id - 1,
                    limit=1,
                    participant_code=participant.code,
                )
                if a.id == alert_id
            ),
            None,
        )
        about = alert.text if alert else None
        return _reason_missing(request, session, staff, study, participant.code, "note", about)
    work.acknowledge(
        session,
        study=study,
        alert_id=alert_id,
        note=note,
        actor=staff.user,
        participant_code=participant.code,
    )
    return _back(study, f"/participants/{code}", done="acknowledged")


# --- worklist -------------------------------------------------------------------------


@router.get("/studies/{slug}/worklist")
def worklist_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Reader,
    status: WorkStatus | None = None,
    site: Annotated[str | None, Query(max_length=12)] = None,
    timepoint: Annotated[str | None, Query(max_length=64)] = None,
    sort: WorkSort = WorkSort.closes_on,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    fmt: Annotated[str | None, Query(alias="format", pattern="^(csv)$")] = None,
) -> Response:
    """Open, overdue and missed surveys of the user's sites, with the open alerts;
    sortable, filterable, a page at a time, or all of it as CSV."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user)
    site_row = studies.find_site(study, site) if site else None
    if site and (site_row is None or not _reachable(staff, site_row.id)):
        raise NotFound(f"no site {site!r} of yours in this study")
    site_codes = {s.id: s.code for s in study.sites}
    filters: dict[str, Any] = {
        "wanted": status,
        "sort": sort,
        "site_id": site_row.id if site_row else None,
        "timepoint": timepoint or None,
    }
    if fmt == "csv":
        return _worklist_csv(session, study, staff, filters, site_codes)
    now = utcnow()
    found = work.worklist(
        session,
        study=study,
        user=user,
        after_id=0,
        limit=PAGE_SIZE + 1,
        offset=(page - 1) * PAGE_SIZE,
        now=now,
        **filters,
    )
    definition = studies.definition_of(study)
    policy = blinding.policy_for(user.role, definition)
    query = {
        "status": status.value if status else "",
        "site": site or "",
        "timepoint": timepoint or "",
        "sort": sort.value,
    }
    context = {
        "rows": found.rows[:PAGE_SIZE],
        "site_codes": site_codes,
        "alerts_open": found.alerts_open,
        "messages_failed": found.messages_failed,
        "alerts": work.alerts(
            session, study=study, user=user, open_only=True, after_id=0, limit=20
        ),
        "query": query,
        "page": page,
        "has_next": len(found.rows) > PAGE_SIZE,
        "statuses": [s.value for s in WorkStatus],
        "sorts": [
            ("closes_on", "Closing date"),
            ("opens_on", "Opening date"),
            ("participant", "Participant"),
            ("timepoint", "Survey"),
        ],
        "sites": _enroll_sites(study, staff),
        "timepoints": [
            (t.code, timepoint_name(t.code))
            for t in definition.schedule
            if policy.shows_timepoint(t.code)  # as the rows: a blind role does not see them
        ],
        "timepoint_name": timepoint_name,
    }
    return study_view(request, staff, study, "console/worklist.html", context)


def _reachable(staff: Staff, site_id: int) -> bool:
    reachable = reachable_sites(staff.user)
    return reachable is None or site_id in reachable


def _worklist_csv(
    session: Session,
    study: Study,
    staff: Staff,
    filters: dict[str, Any],
    site_codes: dict[int, str],
) -> Response:
    now = utcnow()

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["participant", "site", "survey", "opens_on", "closes_on", "status"])
        offset = 0
        while offset < CSV_LIMIT:
            found = work.worklist(
                session,
                study=study,
                user=staff.user,
                after_id=0,
                limit=1000,
                offset=offset,
                now=now,
                **filters,
            )
            for row in found.rows:
                i = row.instance
                state = "overdue" if row.overdue else row.status
                values = (
                    i.participant_code,
                    site_codes[i.site_id],
                    i.timepoint,
                    i.opens_on.isoformat(),
                    i.closes_on.isoformat(),
                    state,
                )
                writer.writerow([cell(v) for v in values])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(found.rows) < 1000:
                return
            offset += 1000

    body = "".join(lines())  # within the request's read transaction
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers=downloads.attachment(f"{study.slug}-worklist.csv"),
    )


# --- exports --------------------------------------------------------------------------


@router.get("/studies/{slug}/exports")
def exports_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Annotated[Staff, needs(Permission.export_blinded)],
) -> Response:
    """The blinded export in each format and shape, its codebook, the data package; the
    unblinded export's form for roles the study shows arms to."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    definition = studies.definition_of(study)
    unblinded = blinding.policy_for(staff.user.role, definition).may_export_unblinded()
    context = {"unblinded": unblinded, "errors": {}, "values": {}}
    return study_view(request, staff, study, "console/exports.html", context)


@router.get(
    "/studies/{slug}/exports/blinded",
    response_class=StreamingResponse,
    dependencies=[Depends(not_cross_site)],
)
def blinded_download(
    request: Request,
    slug: SlugPath,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.export_blinded)],
    fmt: Annotated[Format, Query(alias="format")] = Format.csv,
    shape: Shape = Shape.long,
) -> Response:
    """The blinded dataset (audited, streamed)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return downloads.dataset(
        request.app.state.db, session, study=study, user=staff.user, fmt=fmt, shape=shape
    )


@router.get("/studies/{slug}/exports/codebook", response_class=Response)
def codebook_download(
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Annotated[Staff, needs(Permission.export_blinded)],
    shape: Shape = Shape.long,
) -> Response:
    """The codebook of the blinded export (CSV)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return downloads.codebook_csv_file(study, shape=shape)


@router.get(
    "/studies/{slug}/exports/package",
    response_class=StreamingResponse,
    dependencies=[Depends(not_cross_site)],
)
def package_download(
    request: Request,
    slug: SlugPath,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.export_blinded)],
) -> Response:
    """The Frictionless data package (zip), audited and streamed."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return downloads.package(request.app.state.db, session, study=study, user=staff.user)


@router.post("/studies/{slug}/exports/unblinded", response_class=StreamingResponse)
def unblinded_download(
    request: Request,
    slug: SlugPath,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.export_unblinded)],
    form: CheckedForm,
) -> Response:
    """The unblinded dataset, with the reason it is needed (audited)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    reason = _text(form, "reason")
    fmt = Format.json if first(form, "format") == "json" else Format.csv
    shape = Shape.wide if first(form, "shape") == "wide" else Shape.long
    if downloads.reason_length(reason) < downloads.REASON_MIN_LENGTH:
        wanted = f"at least {downloads.REASON_MIN_LENGTH} visible characters, with words"
        context = {
            "unblinded": True,
            "errors": {"reason": f"Enter why the arms are needed ({wanted})"},
            "values": {"format": fmt.value, "shape": shape.value, "reason": reason},
        }
        return study_view(request, staff, study, "console/exports.html", context, status_code=422)
    return downloads.dataset(
        request.app.state.db,
        session,
        study=study,
        user=staff.user,
        fmt=fmt,
        shape=shape,
        reason=reason,
    )
