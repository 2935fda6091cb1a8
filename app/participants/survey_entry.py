"""A participant's survey as staff work with it: read, entered on the participant's
behalf (a phone interview), and corrected. Finds the participant the caller may see
(404 elsewhere) and asks the caller's blinding policy, then `surveys.staff` does it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.auth.principal import Principal
from app.errors import FieldProblem, InvalidInput
from app.participants import leaving
from app.participants.service import get_participant
from app.participants.survey_schemas import CorrectionIn, StaffAnswersIn
from app.randomization import blinding
from app.studies import service as studies
from app.studies.models import Study
from app.surveys import staff
from app.surveys.staff import StaffSurvey


def _policy(study: Study, user: Principal) -> blinding.Policy:
    return blinding.policy_for(user.role, studies.definition_of(study))


def read_survey(
    session: Session, *, study: Study, code: str, timepoint: str, user: Principal
) -> StaffSurvey:
    """The participant's survey with its answers (once completed) and corrections."""
    participant = get_participant(session, study=study, code=code, user=user)
    return staff.read(
        session,
        study=study,
        participant_id=participant.id,
        timepoint=timepoint,
        policy=_policy(study, user),
    )


def enter_answers(
    session: Session,
    *,
    study: Study,
    code: str,
    timepoint: str,
    body: StaffAnswersIn,
    actor: Principal,
    submit: bool,
) -> StaffSurvey:
    """Keep (or, with `submit`, complete) the answers a staff member entered for the
    participant; an interview dated after they left the study is refused (422)."""
    participant = get_participant(session, study=study, code=code, user=actor)
    on, left_on = body.interviewed_on, participant.withdrawn_on
    if (
        on is not None
        and left_on is not None
        and not leaving.interview_allowed(participant.withdrawal_kind, left_on, on)
    ):
        latest = (
            "before" if participant.withdrawal_kind == leaving.LeavingKind.data else "on or before"
        )
        problem = f"the participant left the study on {left_on.isoformat()}: "
        raise InvalidInput(
            [FieldProblem(("interviewed_on",), f"{problem}date the interview {latest} that day")]
        )
    arguments: dict[str, Any] = {
        "study": study,
        "participant_id": participant.id,
        "timepoint": timepoint,
        "policy": _policy(study, actor),
        "actor": actor,
        "answers": body.answers,
        "interviewed_on": body.interviewed_on,
        "assessor_blind": body.assessor_blind,
    }
    return staff.submit(session, **arguments) if submit else staff.enter(session, **arguments)


def correct_answer(
    session: Session,
    *,
    study: Study,
    code: str,
    timepoint: str,
    body: CorrectionIn,
    actor: Principal,
) -> StaffSurvey:
    """Correct one answer of the participant's completed survey, for a reason."""
    participant = get_participant(session, study=study, code=code, user=actor)
    return staff.correct_answer(
        session,
        study=study,
        participant_id=participant.id,
        timepoint=timepoint,
        policy=_policy(study, actor),
        actor=actor,
        item=body.item,
        value=body.value,
        reason=body.reason,
    )
