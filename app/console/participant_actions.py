"""What staff do to one participant from their record page: randomize, give a survey a
new link or email its invitation again, acknowledge a safety alert (leaving the study is
`console.leaving`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console.deps import (
    PREFIX,
    CheckedForm,
    Staff,
    console_router,
    needs,
    send_soon,
    study_view,
)
from app.console.forms import FormRefused, text
from app.console.shared import acting, back, stratum_words
from app.errors import AlertNotFound, Conflict
from app.participants import service as participants
from app.participants.relink import NOT_OPEN
from app.safety import service as safety
from app.safety.schemas import AlertAcknowledgement, AlertOutcome
from app.studies import service as studies
from app.studies.models import Study
from app.surveys import worklist as work
from app.surveys.models import Alert

router = console_router()

Timepoint = Annotated[str, Path(max_length=64)]


@router.get("/studies/{slug}/participants/{code}/randomize")
def randomize_page(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: ReadSessionDep,
    staff: Annotated[Staff, needs(Permission.randomize)],
) -> Response:
    """Ask before randomizing (it cannot be undone), showing the stratum that will be used."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    site = next(s for s in study.sites if s.id == participant.site_id)
    definition = studies.definition_of(study)
    context = {
        "participant": participant,
        "stratum": stratum_words(definition, site.code, participant.strata),
    }
    return study_view(request, staff, study, "console/randomize.html", context)


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
    study = acting(session, slug, staff)
    participants.randomize(session, study=study, code=code, actor=staff.user)
    return back(study, f"/participants/{code}", done="randomized")


@router.post("/studies/{slug}/participants/{code}/surveys/{timepoint}/reissue")
def reissue(
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: SessionDep,
    staff: Annotated[Staff, needs(Permission.enroll)],
    form: CheckedForm,
) -> Response:
    """Give the survey a new link; the old one stops working. The notice says whether it
    was emailed to the participant, and why not (a link withheld from a blind role is
    still emailed; for a timepoint only some arms have, a blind role is told alike
    whether or not the participant has it: see the API's reissue)."""
    study = acting(session, slug, staff)
    new = participants.reissue(
        session, study=study, code=code, timepoint=timepoint, actor=staff.user
    )
    return back(study, f"/participants/{code}", done=reissued_notice(new))


def reissued_notice(new: participants.Reissued) -> str:
    """The participant page's notice (its `done` code) after a new link."""
    if new.emailed is None:  # not said: answered alike for every arm
        return "relinked"
    if new.emailed:
        return "reissued_emailed"
    if new.why_not == NOT_OPEN:
        return "reissued_not_open"
    return "reissued_no_email" if new.token else "no_email_withheld"


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
    study = acting(session, slug, staff)
    told = participants.resend_invitation(
        session, study=study, code=code, timepoint=timepoint, actor=staff.user
    )
    done = "resent" if told else "resent_if_open"
    return send_soon(request, back(study, f"/participants/{code}", done=done))


ACKNOWLEDGE_MESSAGES = {
    "outcome": "Choose what followed the alert",
    "note": "Enter a note on how the alert was dealt with",
}


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
    """Acknowledge a safety alert, saying what followed: no adverse event (with a note on
    what was done), or an adverse event: the new-event form, filled in from the alert,
    whose saving acknowledges it (`console.events`)."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    alert = _alert(session, staff, study, participant.code, alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id} for participant {participant.code}")
    typed = {"outcome": text(form, "outcome", 16), "note": text(form, "note")}
    if typed["outcome"] == AlertOutcome.event:
        if alert.acknowledged_at is not None:
            raise Conflict("the alert was already acknowledged")
        target = f"{PREFIX}/studies/{study.slug}/participants/{participant.code}/events/new"
        return RedirectResponse(f"{target}?alert={alert_id}", status_code=303)
    errors = {}
    if typed["outcome"] != AlertOutcome.no_event:
        errors["outcome"] = ACKNOWLEDGE_MESSAGES["outcome"]
    elif not typed["note"]:
        errors["note"] = ACKNOWLEDGE_MESSAGES["note"]
    if errors:
        context = {
            "participant": participant,
            "a": {"id": alert_id, "text": alert.text},
            "typed": typed,
            "errors": errors,
        }
        page = study_view(
            request, staff, study, "console/acknowledge.html", context, status_code=422
        )
        raise FormRefused(page)
    safety.acknowledge_alert(
        session,
        study=study,
        alert_id=alert_id,
        body=AlertAcknowledgement(outcome=AlertOutcome.no_event, note=typed["note"]),
        actor=staff.user,
    )
    return back(study, f"/participants/{code}", done="acknowledged")


def _alert(session: Session, staff: Staff, study: Study, code: str, alert_id: int) -> Alert | None:
    """The participant's alert of that id, as the user may see it (None if not)."""
    found = work.alerts(
        session,
        study=study,
        user=staff.user,
        open_only=False,
        after_id=alert_id - 1,
        limit=1,
        participant_code=code,
    )
    return next((a for a in found if a.id == alert_id), None)
