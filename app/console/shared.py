"""What the study pages share: the way back to a page after an action, the sites a user
may choose, the study locked for an action, and the words pages show for codes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from app.auth.permissions import reachable_sites
from app.console.deps import PREFIX, Staff
from app.reports import service as reports
from app.reports.flow import ConsortFlow
from app.studies import service as studies
from app.studies.definition import StudyDefinition, words_of
from app.studies.models import Study
from app.surveys.models import Alert
from app.surveys.service import timepoint_name
from app.web.pages import share

PAGE_SIZE = 50


def back(study: Study, path: str, *, done: str | None = None) -> RedirectResponse:
    """See-other to a page of the study, with the notice of what was done."""
    target = f"{PREFIX}/studies/{study.slug}{path}"
    if done:
        target += f"?done={done}"
    return RedirectResponse(target, status_code=303)


def site_choices(study: Study, staff: Staff) -> list[tuple[str, str]]:
    """The study's sites the user works at, as (code, "Name (CODE)")."""
    reachable = reachable_sites(staff.user)
    return [
        (s.code, f"{s.name} ({s.code})")
        for s in sorted(study.sites, key=lambda s: s.code)
        if reachable is None or s.id in reachable
    ]


def reachable(staff: Staff, site_id: int) -> bool:
    """Whether the user works at the site."""
    sites = reachable_sites(staff.user)
    return sites is None or site_id in sites


def acting(session: Session, slug: str, staff: Staff) -> Study:
    """The study, its row locked for an action that changes it."""
    return studies.get_study(
        session, slug=slug, user=staff.user, lock=studies.RowLock.for_no_key_update
    )


def retention_rows(rows: Sequence[reports.Retention], flow: ConsortFlow) -> list[dict[str, Any]]:
    """Retention per timepoint and group, as the dashboard and reports show it."""
    labels = {g.code: g.label for g in flow.groups}
    return [
        {
            "timepoint": timepoint_name(r.timepoint),
            "group": labels.get(r.group, r.group),
            "completed": r.completed,
            "missed": r.missed,
            "pending": r.pending,
            "rate": "—" if r.rate is None else share(r.rate),
        }
        for r in rows
    ]


def open_for(since: datetime, now: datetime) -> str:
    """How long something has been open, in the largest whole unit: "open 3 days"."""
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"open {count} {unit}{'' if count == 1 else 's'}"
    return "open less than a minute"


def alert_rows(alerts: Sequence[Alert], study: Study, *, now: datetime) -> list[dict[str, Any]]:
    """Open safety alerts as the triage table shows them, oldest first: who, where, what,
    when raised (in the study's time zone) and how long open."""
    zone = studies.definition_of(study).zone()
    codes = {s.id: s.code for s in study.sites}
    return [
        {
            "id": a.id,
            "participant": a.participant_code,
            "site": codes.get(a.site_id, ""),
            "text": a.text,
            "raised": a.raised_at.astimezone(zone).strftime("%d %b %Y %H:%M").lstrip("0"),
            "raised_iso": a.raised_at.isoformat(),
            "open_for": open_for(a.raised_at, now),
        }
        for a in sorted(alerts, key=lambda a: (a.raised_at, a.id))
    ]


def strata_rows(
    definition: StudyDefinition, strata: Mapping[str, str] | None
) -> list[tuple[str, str]]:
    """A participant's strata as (factor, level) in words, the definition's labels first."""
    factors = {f.code: f for f in definition.randomization.strata}
    return [
        (words_of(code), factors[code].label(level) if code in factors else words_of(level))
        for code, level in (strata or {}).items()
    ]


def stratum_words(
    definition: StudyDefinition, site_code: str, strata: Mapping[str, str] | None
) -> str:
    """The stratum a participant is randomized in: "Site PHL, diagnosis: Bipolar disorder"."""
    parts = [f"Site {site_code}"] if definition.randomization.stratify_by_site else []
    parts += [f"{factor.lower()}: {level}" for factor, level in strata_rows(definition, strata)]
    return ", ".join(parts) or "One stratum for the whole study"
