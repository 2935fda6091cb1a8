"""The worklist: open, overdue and missed surveys of the user's sites with the open
alerts (and, on top, the reporting deadlines of adverse events not yet met); sortable,
filterable, a page at a time, or all of it as CSV. Its rows are the
worklist service's (`surveys.worklist`): this page only shows them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Query, Request, Response
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission
from app.console.calls import worklist_rows
from app.console.consents import reconsent_summary
from app.console.deps import Staff, console_router, needs, study_view
from app.console.events import due_rows
from app.console.forms import chosen
from app.console.shared import PAGE_SIZE, alert_rows, reachable, site_choices
from app.console.texts import reply_rows
from app.db.base import utcnow
from app.errors import NotFound
from app.exports import downloads
from app.exports.formats import cell
from app.randomization import blinding
from app.retention.calls import due_for_call
from app.retention.schemas import CallReasonRead
from app.studies import service as studies
from app.studies.models import Study
from app.surveys import worklist as work
from app.surveys.scheduling import local_date
from app.surveys.service import timepoint_name
from app.surveys.worklist import WorkSort, WorkStatus
from app.web.pages import shortdate

CSV_LIMIT = 100_000  # rows of one worklist download
CSV_BATCH = 1000
MISSED_RECENT_DAYS = 14  # a survey missed longer ago needs no action now

router = console_router()

Reader = Annotated[Staff, needs(Permission.read_participants)]

_SORTS = [
    ("closes_on", "Closing date"),
    ("opens_on", "Opening date"),
    ("participant", "Participant"),
    ("timepoint", "Survey"),
]


@router.get("/studies/{slug}/worklist")
def worklist_page(
    request: Request,
    slug: SlugPath,
    session: ReadSessionDep,
    staff: Reader,
    status_choice: Annotated[str, Query(alias="status", max_length=32)] = "",
    site: Annotated[str | None, Query(max_length=12)] = None,
    timepoint: Annotated[str | None, Query(max_length=64)] = None,
    sort: WorkSort = WorkSort.closes_on,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    fmt: Annotated[str | None, Query(alias="format", pattern="^(csv)$")] = None,
) -> Response:
    """Open, overdue and missed surveys of the user's sites, with the open alerts;
    sortable, filterable, a page at a time, or all of it as CSV."""
    status = chosen(WorkStatus, status_choice, field="status")
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user)
    site_row = studies.find_site(study, site) if site else None
    if site and (site_row is None or not reachable(staff, site_row.id)):
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
    # The bare address shows what needs action; any choice (even "Any") shows the list.
    needs_action = not request.url.query
    if needs_action:
        found = _needing_action(session, study, staff, now)
    else:
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
    due, due_more = due_rows(session, staff, study, now=now)
    context = {
        "sms_replies": reply_rows(session, staff, study, now=now),
        "reply_done": request.query_params.get("done") == "reply",
        "due_rows": due,
        "due_more": due_more,
        "rows": found.rows[:PAGE_SIZE],
        "site_codes": site_codes,
        "alerts_open": found.alerts_open,
        "messages_failed": found.messages_failed,
        "alert_rows": alert_rows(
            work.alerts(session, study=study, user=user, open_only=True, after_id=0, limit=100),
            study,
            now=now,
        ),
        "query": {
            "status": status.value if status else "",
            "site": site or "",
            "timepoint": timepoint or "",
            "sort": sort.value,
        },
        "page": page,
        "has_next": len(found.rows) > PAGE_SIZE and not needs_action,
        "needs_action": needs_action,
        "missed_days": MISSED_RECENT_DAYS,
        "statuses": [s.value for s in WorkStatus],
        "sorts": _SORTS,
        "sites": site_choices(study, staff),
        "timepoints": [
            (t.code, timepoint_name(t.code))
            for t in definition.schedule
            if policy.shows_timepoint(t.code)  # as the rows: a blind role does not see them
        ],
        "timepoint_name": timepoint_name,
        "reconsent": reconsent_summary(session, staff, study),
        "sign_ups": worklist_rows(session, staff, study),
        "calls_due": _calls_due(session, staff, study, now),
        "call_done": request.query_params.get("done") == "call",
    }
    return study_view(request, staff, study, "console/worklist.html", context)


CALLS_SHOWN = 50  # participants due for a call on the page (the API lists them all)
RULE_WORDS = {
    "survey_overdue": "survey not done",
    "messages_failed": "messages could not be sent",
    "no_contact": "not reached",
    "next_step": "next step due",
}


def _calls_due(
    session: Session, staff: Staff, study: Study, now: datetime
) -> list[dict[str, Any]] | None:
    """Participants due for a call (`retention.calls`), for roles that contact them."""
    if not staff.may(Permission.contact_participants):
        return None
    zone = studies.definition_of(study).zone()
    rows = due_for_call(
        session, study=study, user=staff.user, after_id=0, limit=CALLS_SHOWN, now=now
    )
    return [
        {
            "code": row.participant,
            "site": row.site,
            "reasons": [_reason_words(r) for r in row.reasons],
            "last": row.last_attempt,
            "last_on": row.last_attempt.made_at.astimezone(zone).date()
            if row.last_attempt
            else None,
        }
        for row in rows
    ]


def _reason_words(reason: CallReasonRead) -> str:
    words = RULE_WORDS.get(reason.kind, reason.kind)
    if reason.kind == "survey_overdue" and reason.timepoint:
        return f"{timepoint_name(reason.timepoint)} {words}"
    if reason.kind == "messages_failed":
        return f"{reason.count} {words}"
    if reason.kind == "no_contact" and reason.since:
        return f"{words} since {shortdate(reason.since)}"
    return words


def _needing_action(session: Session, study: Study, staff: Staff, now: datetime) -> work.Worklist:
    """Overdue surveys, and those missed in the last MISSED_RECENT_DAYS days: the rows of
    the worklist's own filters, most urgent first."""
    found = [
        work.worklist(
            session,
            study=study,
            user=staff.user,
            wanted=wanted,
            sort=WorkSort.closes_on,
            after_id=0,
            limit=PAGE_SIZE,
            now=now,
        )
        for wanted in (WorkStatus.overdue, WorkStatus.missed)
    ]
    # closes_on is a date of the study's zone: "today" is the study's, not UTC's (before
    # midnight in New York it is already tomorrow in UTC).
    since = local_date(now, studies.definition_of(study).zone()) - timedelta(
        days=MISSED_RECENT_DAYS
    )
    rows = found[0].rows + [r for r in found[1].rows if r.instance.closes_on >= since]
    rows.sort(key=lambda r: (r.instance.closes_on, r.instance.id))
    return work.Worklist(rows, found[0].alerts_open, found[0].messages_failed)


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
                limit=CSV_BATCH,
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
            if len(found.rows) < CSV_BATCH:
                return
            offset += CSV_BATCH

    body = "".join(lines())  # within the request's read transaction
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers=downloads.attachment(f"{study.slug}-worklist.csv"),
    )
