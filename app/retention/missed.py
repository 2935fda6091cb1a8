"""Missed visits (SPEC 11, issue 17 item 5): why a missed survey was missed, given by a
coordinator; shown on the survey, in the blinded export (a column per timepoint) and in
the retention report (counts by timepoint and reason).

Only a survey whose window closed without it being done takes a reason (409
otherwise); a reason given again replaces the one before (the audit keeps both). A
timepoint only some arms have is "no survey" for a role blind to arms, whatever the
participant's arm, as everywhere else (`surveys.staff`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.errors import SurveyNotFound, SurveyNotMissed
from app.participants.lookup import get_participant
from app.randomization import blinding
from app.retention.rules import MissedReason
from app.retention.schemas import MissedReasonIn, MissedReasonRead
from app.studies.lifecycle import ensure_not_locked
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus, status_of


def give_missed_reason(
    session: Session,
    *,
    study: Study,
    code: str,
    timepoint: str,
    data: MissedReasonIn,
    actor: Principal,
) -> MissedReasonRead:
    """Record why the participant's survey at `timepoint` was missed (audited: the
    reason's code, never the note)."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor)
    definition = definition_of(study)
    instance = None
    if blinding.policy_for(actor.role, definition).shows_timepoint(timepoint):
        instance = session.scalars(
            select(SurveyInstance)
            .where(
                SurveyInstance.participant_id == participant.id,
                SurveyInstance.timepoint == timepoint,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
    if instance is None:
        raise SurveyNotFound(f"no survey {timepoint!r} for this participant")
    status = status_of(instance, now=now, zone=definition.zone())
    if status is not SurveyStatus.missed:
        raise SurveyNotMissed(f"the survey {timepoint!r} is {status.value}, not missed")
    before = instance.missed_reason
    instance.missed_reason = data.reason.value
    instance.missed_note = data.note
    instance.missed_reason_by = actor.id
    instance.missed_reason_at = now
    session.flush()
    audit.record(
        session,
        AuditAction.survey_missed_reason,
        actor=actor,
        entity_id=f"{participant.code}:{timepoint}",
        study_id=study.id,
        changes={"missed_reason": (before, data.reason.value)},
    )
    return MissedReasonRead(
        participant=participant.code,
        timepoint=timepoint,
        status=status.value,
        missed_reason=MissedReason(data.reason),
        missed_note=data.note,
        missed_reason_by=actor.email,
        missed_reason_at=now,
    )
