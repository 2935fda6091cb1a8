"""Surveys as JSON: what a personal link reaches (no account), and what coordinators
work from (worklist, safety alerts, emails that could not be sent)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES, SURVEY_LINK_RESPONSES
from app.api.paging import PageDep
from app.api.params import SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.base import utcnow
from app.studies.service import get_study
from app.surveys import service, worklist
from app.surveys.deps import LINK_ROUTES, Token
from app.surveys.schemas import (
    AlertList,
    AnswersIn,
    MessageList,
    SubmitBody,
    Submitted,
    SurveyRead,
    Worklist,
    alert_read,
    message_read,
    survey_read,
    work_item,
)
from app.surveys.worklist import WorkStatus

links = APIRouter(
    prefix="/api/v1/surveys",
    tags=["surveys"],
    responses=SURVEY_LINK_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=LINK_ROUTES,
)


@links.get("/{token}", response_model=SurveyRead)
def get_survey(token: Token, session: ReadSessionDep) -> SurveyRead:
    """The survey of a personal link while it is open: its questions and the answers
    saved so far. A completed survey is 409 and shows no answers: a link in an old email
    must not keep showing them."""
    opened = service.view(session, token=token)
    service.ensure_answerable(opened)
    return survey_read(opened)


@links.put("/{token}/answers", response_model=SurveyRead)
def save_answers(token: Token, answers: AnswersIn, session: SessionDep) -> SurveyRead:
    """Keep some answers (merged over those kept before); each must be valid, none is
    required yet. 422 lists every answer to correct, and nothing is kept then."""
    return survey_read(service.save(session, token=token, answers=answers))


@links.post("/{token}/submit", response_model=Submitted)
def submit_survey(token: Token, body: SubmitBody, session: SessionDep) -> Submitted:
    """Complete the survey: the answers (over those saved) must be valid and complete."""
    done = service.submit(session, token=token, answers=body.answers)
    definition = done.survey.definition
    return Submitted(
        status="completed",
        support_text=definition.support_text,
        crisis_text=definition.crisis_text if done.alerts else None,
    )


staff = APIRouter(
    prefix="/api/v1/studies/{slug}",
    tags=["worklist"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)
Reader = Annotated[Principal, Depends(require(Permission.read_participants))]


@staff.get("/schedule", response_model=Worklist)
def schedule(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    page: PageDep,
    status: Annotated[WorkStatus | None, Query(description="only these surveys")] = None,
) -> Worklist:
    """Surveys of the caller's sites: open, overdue (open and past the last reminder),
    missed; with how many safety alerts and failed emails wait there."""
    study = get_study(session, slug=slug, user=user)
    found = worklist.worklist(
        session,
        study=study,
        user=user,
        wanted=status,
        after_id=page.after,
        limit=page.limit,
        now=utcnow(),
    )
    sites = {s.id: s.code for s in study.sites}
    rows = found.rows
    return Worklist(
        items=[
            work_item(
                r.instance, site=sites[r.instance.site_id], status=r.status, overdue=r.overdue
            )
            for r in rows
        ],
        next=page.next_url(count=len(rows), last_id=rows[-1].instance.id if rows else None),
        alerts_open=found.alerts_open,
        messages_failed=found.messages_failed,
    )


@staff.get("/alerts", response_model=AlertList)
def list_alerts(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    page: PageDep,
    open_only: Annotated[
        bool, Query(alias="open", description="only those not acknowledged")
    ] = True,
) -> AlertList:
    """Safety alerts of the caller's sites, oldest first."""
    study = get_study(session, slug=slug, user=user)
    rows = worklist.alerts(
        session, study=study, user=user, open_only=open_only, after_id=page.after, limit=page.limit
    )
    sites = {s.id: s.code for s in study.sites}
    return AlertList(
        items=[alert_read(a, site=sites[a.site_id]) for a in rows],
        next=page.next_url(count=len(rows), last_id=rows[-1].id if rows else None),
    )


@staff.get("/messages", response_model=MessageList)
def failed_messages(
    slug: SlugPath,
    session: ReadSessionDep,
    user: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessageList:
    """Emails of the caller's sites that could not be sent (after every retry), newest
    first."""
    study = get_study(session, slug=slug, user=user)
    rows = worklist.messages_failed(session, study=study, user=user, limit=limit)
    return MessageList(items=[message_read(m) for m in rows], next=None)
