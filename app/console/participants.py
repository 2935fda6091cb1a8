"""The participants of a study: the list of the user's sites, and one participant's record
page (status, strata, contact, surveys with their links, alerts, actions, history).

The record page's parts are built by one function each in `console.record` (the grid,
the answers, the alerts, the history), so a new part is one more function there and one
more key of the page's context."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Query, Request, Response

from app.api.deps import ReadSessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console import consents, contacts, record
from app.console.calls import birth_mismatched
from app.console.deps import Staff, console_router, needs, study_view
from app.console.events import participant_events
from app.console.forms import chosen
from app.console.shared import PAGE_SIZE, reachable, site_choices, strata_rows
from app.db.base import utcnow
from app.errors import NotFound
from app.participants import search as finding
from app.participants import service as participants
from app.participants.leaving import CATEGORY_LABELS
from app.participants.lifecycle import ParticipantStatus
from app.participants.search import MAX_QUERY, NAME_SCAN_LIMIT, Readiness
from app.randomization import blinding
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.surveys import worklist as work
from app.surveys.service import timepoint_name

router = console_router()

Reader = Annotated[Staff, needs(Permission.read_participants)]


@router.get("/studies/{slug}/participants")
def participants_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Reader,
    status_choice: Annotated[str, Query(alias="status", max_length=32)] = "",
    site: Annotated[str | None, Query(max_length=12)] = None,
    ready_choice: Annotated[str, Query(alias="ready", max_length=32)] = "",
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """Participants of the user's sites, oldest first, a page at a time; or those found
    by code, email or name; or those ready to randomize (or awaiting baseline)."""
    status = chosen(ParticipantStatus, status_choice, field="status")
    ready = chosen(Readiness, ready_choice, field="ready")
    study = studies.get_study(session, slug=slug, user=staff.user)
    site_row = studies.find_site(study, site) if site else None
    if site and (site_row is None or not reachable(staff, site_row.id)):
        raise NotFound(f"no site {site!r} of yours in this study")
    scan_stopped = False
    if q.strip():
        found = finding.search(session, study=study, user=staff.user, text=q, limit=PAGE_SIZE)
        rows, scan_stopped = found.participants, found.scan_stopped
    elif ready is not None:
        rows = finding.by_readiness(
            session,
            study=study,
            user=staff.user,
            readiness=ready,
            site_id=site_row.id if site_row else None,
            after_id=after,
            limit=PAGE_SIZE,
        )
    else:
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
        "ready": ready.value if ready else "",
        "q": q.strip(),
        "scan_stopped": scan_stopped,
        "name_scan_limit": NAME_SCAN_LIMIT,
        "sites": site_choices(study, staff),
        "statuses": [(s.value, record.STATUS_WORDS[s]) for s in ParticipantStatus],
        "status_words": record.status_words,
        "readiness": [
            (Readiness.ready.value, "Ready to randomize"),
            (Readiness.awaiting_baseline.value, "Awaiting baseline"),
        ],
        "next_after": rows[-1].id if len(rows) == PAGE_SIZE and not q.strip() else None,
    }
    return study_view(request, staff, study, "console/participants.html", context)


DONE = {
    "texting": "The texting preferences are saved.",
    "enrolled": "The participant is enrolled.",
    "screened": "The screening is recorded: the participant is not eligible.",
    "randomized": "The participant is randomized.",
    "verified": "The diagnosis is recorded as verified: the participant can be randomized.",
    "withdrawn": "The withdrawal is recorded.",
    "reissued": "The survey has a new link. The old link no longer works.",
    "reissued_emailed": "The survey has a new link, emailed to the participant. The old link no longer works.",  # noqa: E501
    "reissued_no_email": "The survey has a new link, not emailed: the participant has no email address. Give them the link below. The old link no longer works.",  # noqa: E501
    "no_email_withheld": "The survey has a new link, not emailed: the participant has no email address, and the link is not shown to roles blind to arms. Ask a colleague who may see it to give it to them. The old link no longer works.",  # noqa: E501
    "reissued_not_open": "The survey has a new link. It is not emailed now: the survey is not open yet, and its invitation will carry the new link. The old link no longer works.",  # noqa: E501
    "stopped_intervention": "The stop of the intervention is recorded. The participant's surveys continue.",  # noqa: E501
    "entered": "The answers are entered and the survey is complete.",
    "corrected": "The answer is corrected. The original is kept in the survey's corrections.",
    "resent": "The invitation will be emailed again in a moment.",
    "relinked": "If the participant has this survey open, a new link is on its way to them "
    "by email. Any older link no longer works.",
    "resent_if_open": "If the participant has this survey open, the invitation will be "
    "emailed again in a moment.",
    "acknowledged": "The alert is acknowledged.",
    "unblinded": "The unblinding is recorded.",
    "countersigned": "The consent is countersigned.",
    "consent_recorded": "The consent taken in person is recorded.",
} | contacts.DONE


def ineligible_words(definition: StudyDefinition, reasons: list[str] | None) -> list[str]:
    """Why a person was not eligible: each criterion not met, with the answer given."""
    criteria = {c.code: c for c in definition.eligibility}
    return [
        f"{criteria[code].text}: {'no' if criteria[code].must_be else 'yes'}"
        if code in criteria
        else code.replace("_", " ")
        for code in reasons or []
    ]


@router.get("/studies/{slug}/participants/{code}")
def participant_page(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: ReadSessionDep,
    staff: Reader,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """One participant's record: open safety alerts first, then status, strata, contact,
    their adverse events, the timepoints x instruments grid, each completed survey's
    answers and scores, the actions the role may take, and the history (see
    `console.record`)."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user)
    participant = participants.get_participant(session, study=study, code=code, user=user)
    detail = participants.detail(session, study=study, participant=participant, user=user)
    definition = studies.definition_of(study)
    policy = blinding.policy_for(user.role, definition)
    base_url: str = request.app.state.settings.base_url
    read = record.read_surveys(session, study=study, detail=detail, user=user)
    found = work.alerts(
        session,
        study=study,
        user=user,
        open_only=False,
        after_id=0,
        limit=100,
        participant_code=participant.code,
    )
    alerts = record.alerts(definition, policy, found, read, now=utcnow())
    arm = getattr(detail, "arm", None)
    context = {
        "participant": participant,
        "detail": detail,
        "status_words": record.status_words(participant),
        "leaving": record.leaving_words(participant.withdrawal_kind),
        "category": _category_words(participant.withdrawal_category),
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
        "grid": record.grid(
            definition,
            policy,
            read,
            arm=arm.code if arm is not None and arm.code else None,
            randomized=participant.randomized_at is not None,
        ),
        "answers": record.answers(definition, read),
        "entry": record.entry_links(read) if staff.may(Permission.enter_data) else [],
        "open_alerts": [a for a in alerts if a["open_for"]],
        "acknowledged_alerts": [a for a in alerts if not a["open_for"]],
        "history": record.history(
            session,
            study=study,
            definition=definition,
            participant=participant,
            policy=policy,
            shown_alerts=alerts,
        ),
        "notice": DONE.get(done or ""),
        "allocated": _allocated(done, detail),
        "strata": strata_rows(definition, participant.strata),
        "site": next(s for s in study.sites if s.id == participant.site_id),
        "waiting_for": [
            timepoint_name(s.timepoint)
            for s in detail.surveys
            if s.timepoint in definition.randomization.requires_completed
            and s.status != "completed"
        ],
        "zone": definition.zone(),
        "texting_days": {
            "consent": _day_in(participant.sms_consent_at, definition.zone()),
            "stopped": _day_in(participant.sms_stopped_at, definition.zone()),
        },
        "ineligible": ineligible_words(definition, participant.ineligible_reasons),
        "events": participant_events(session, staff, study, participant.code),
        "consents": consents.section(session, staff, study, participant),
        "retention": contacts.section(session, staff, study, participant),
        "birth_mismatched": birth_mismatched(session, participant.id),
    }
    return study_view(request, staff, study, "console/participant.html", context)


def _day_in(moment: datetime | None, zone: ZoneInfo) -> date | None:
    """The day a moment (stored in UTC; SQLite gives it back without its zone) fell on
    in the study's zone: consent at 9 pm in New York is that day, not the next."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone).date()


def _category_words(category: str | None) -> str | None:
    if category is None:
        return None
    known = {c.value: label for c, label in CATEGORY_LABELS.items()}
    return known.get(category, category.replace("_", " ").capitalize())


def _allocated(done: str | None, detail: Any) -> str | None:
    """After randomizing, the arm in words, for roles the study shows arms to (the
    service gives `detail.arm` only to them)."""
    arm = getattr(detail, "arm", None)
    if done != "randomized" or arm is None or not arm.code:
        return None
    return f"Allocated to {arm.label}."
