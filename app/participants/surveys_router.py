"""A participant's survey for staff: read with its answers, entered on the participant's
behalf in an interview (`mode: staff`), and corrected after submission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from app.api.body import JSON_BODY_LIMIT, CheckedJsonRoute
from app.api.deps import ReadSessionDep, SessionDep
from app.api.errors import PROBLEM_RESPONSES
from app.api.params import CodePath, SlugPath
from app.auth.deps import STAFF_ROUTES, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.idempotency.deps import IdempotencyDep
from app.participants import survey_entry
from app.participants.survey_schemas import (
    CorrectionIn,
    StaffAnswersIn,
    StaffSurveyRead,
    staff_survey_read,
)
from app.studies.service import RowLock, get_study

router = APIRouter(
    prefix="/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}",
    tags=["participants"],
    responses=PROBLEM_RESPONSES,
    route_class=CheckedJsonRoute,
    max_body_size=JSON_BODY_LIMIT,
    dependencies=STAFF_ROUTES,
)

TimepointPath = Annotated[str, Path(max_length=64, description="timepoint code")]
Reader = Annotated[Principal, Depends(require(Permission.read_participants))]
Enterer = Annotated[Principal, Depends(require(Permission.enter_data))]


@router.get("", response_model=StaffSurveyRead)
def get_survey(
    slug: SlugPath, code: CodePath, timepoint: TimepointPath, session: ReadSessionDep, user: Reader
) -> StaffSurveyRead:
    """The participant's survey: status, window, how it was entered, its answers and
    scores once completed, and every correction. For a role blind to arms, a timepoint
    only some arms have is 404 whether or not the participant has it, and instruments
    only some arms answer are left out."""
    study = get_study(session, slug=slug, user=user)
    found = survey_entry.read_survey(
        session, study=study, code=code, timepoint=timepoint, user=user
    )
    return staff_survey_read(found)


@router.put("/answers", response_model=StaffSurveyRead)
def save_answers(
    slug: SlugPath,
    code: CodePath,
    timepoint: TimepointPath,
    body: StaffAnswersIn,
    session: SessionDep,
    actor: Enterer,
) -> StaffSurveyRead:
    """Keep answers entered on the participant's behalf (merged over those kept; null
    takes one back); each must be valid, none is required yet. The survey is open, or
    missed (late data entry)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    saved = survey_entry.enter_answers(
        session, study=study, code=code, timepoint=timepoint, body=body, actor=actor, submit=False
    )
    return staff_survey_read(saved)


@router.post("/submit", response_model=StaffSurveyRead)
def submit_answers(
    slug: SlugPath,
    code: CodePath,
    timepoint: TimepointPath,
    body: StaffAnswersIn,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Enterer,
) -> Response:
    """Complete the survey on the participant's behalf (an interview dated
    `interviewed_on`): scored, audited with `mode: staff`, safety alerts raised as
    through the link. 409 once completed (correct it instead), before it opens or once
    cancelled."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    done = survey_entry.enter_answers(
        session, study=study, code=code, timepoint=timepoint, body=body, actor=actor, submit=True
    )
    return idempotency.remember(staff_survey_read(done))


@router.post("/corrections", status_code=201, response_model=StaffSurveyRead)
def correct_answer(
    slug: SlugPath,
    code: CodePath,
    timepoint: TimepointPath,
    body: CorrectionIn,
    session: SessionDep,
    idempotency: IdempotencyDep,
    actor: Enterer,
) -> Response:
    """Correct one answer of a completed survey, for a reason: the original is kept, the
    scores are computed again and a safety rule now met raises its alert (audited)."""
    study = get_study(session, slug=slug, user=actor, lock=RowLock.for_no_key_update)
    corrected = survey_entry.correct_answer(
        session, study=study, code=code, timepoint=timepoint, body=body, actor=actor
    )
    return idempotency.remember(staff_survey_read(corrected))
