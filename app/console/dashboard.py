"""The console's home (the studies the user works on) and a study's dashboard."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission, reachable_sites
from app.console.deps import Staff, StaffDep, console_router, required, study_view, view
from app.console.events import due_rows
from app.console.shared import alert_rows, retention_rows
from app.db.base import utcnow
from app.reports import service as reports
from app.reports.svg import description
from app.studies import service as studies
from app.studies.models import Study
from app.surveys import worklist as work

router = console_router()


@router.get("")
def home(request: Request, session: ReadSessionDep, staff: StaffDep) -> Response:
    """The studies the user works on; a coordinator of one study lands on its dashboard
    (shown here: the address every sign-in leads to stays the same)."""
    found = studies.list_studies(session, user=staff.user, after_id=0, limit=1000)
    if len(found) == 1 and _works_on_one_study(staff):
        return _dashboard(request, session, staff, found[0])
    reachable = reachable_sites(staff.user)
    sites = {
        s.slug: sorted(x.code for x in s.sites if reachable is None or x.id in reachable)
        for s in found
    }
    return view(request, "console/home.html", {"studies": found, "sites": sites}, badge=True)


# Where a study opens for a role that has no dashboard (no reports): a safety reviewer
# on its adverse events, the DSMB on its report.
_LANDINGS = (
    (Permission.read_safety, "/events"),
    (Permission.read_dsmb_open, "/reports/dsmb?part=open"),
)


@router.get("/studies/{slug}")
def dashboard(
    request: Request, slug: SlugPath, session: ReadSessionDep, staff: StaffDep
) -> Response:
    """Recruitment against target per site, randomized per group, retention, the CONSORT
    diagram; for roles that read safety records, the reporting deadlines not yet met on
    top; for roles that see participants, open safety alerts and failed emails. A role
    without a dashboard is sent to its own page of the study."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    if not staff.may(Permission.read_reports):
        landing = next((path for need, path in _LANDINGS if staff.may(need)), None)
        if landing is None:
            required(staff, Permission.read_reports)
        return RedirectResponse(f"/console/studies/{study.slug}{landing}", status_code=303)
    return _dashboard(request, session, staff, study)


def _works_on_one_study(staff: Staff) -> bool:
    # Coordinators: they enroll and may read the dashboard, and have no admin pages.
    return (
        staff.may(Permission.enroll)
        and staff.may(Permission.read_reports)
        and not staff.may(Permission.manage_studies)
    )


def _dashboard(request: Request, session: Session, staff: Staff, study: Study) -> Response:
    user = staff.user
    now = utcnow()
    flow = reports.consort(session, study=study, user=user)
    due, due_more = due_rows(session, staff, study, now=now)
    context: dict[str, Any] = {
        "recruitment": reports.recruitment(session, study=study),
        "flow": flow,
        "flow_text": description(flow),
        "retention": retention_rows(reports.retention(session, study=study, user=user), flow),
        "due_rows": due,
        "due_more": due_more,
    }
    if staff.may(Permission.read_participants):
        alerts = work.alerts(session, study=study, user=user, open_only=True, after_id=0, limit=100)
        context["alert_rows"] = alert_rows(alerts, study, now=now)
        context["failed"] = work.messages_failed(session, study=study, user=user, limit=100)
        context["sites"] = {s.id: s.code for s in study.sites}
    return study_view(request, staff, study, "console/dashboard.html", context)
