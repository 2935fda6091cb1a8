"""Recording that a participant leaves the study, by kind (see `leaving`): the status,
the surveys and queued messages it stops, and the audit record, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.service import Change
from app.auth.principal import Principal
from app.outbox import service as outbox
from app.participants import leaving, lifecycle
from app.participants.leaving import LeavingCategory, LeavingKind
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import service as surveys
from app.surveys.scheduling import local_date


@dataclass(frozen=True)
class Leaving:
    """What the team records: the kind, the date (None: today in the study's zone), a
    coded reason and the reason in words (sealed)."""

    reason: str
    kind: LeavingKind = LeavingKind.follow_up
    withdrawn_on: date | None = None
    category: LeavingCategory = LeavingCategory.other


def record_leaving(
    session: Session,
    *,
    study: Study,
    participant: Participant,
    leaving_: Leaving,
    actor: Principal,
    now: datetime,
) -> Participant:
    """Apply a leaving to a locked participant row (409 for a kind not allowed now, 422
    for a bad date); audited as `participant.withdrawn` with kind, date and category."""
    zone = definition_of(study).zone()
    randomized = participant.status == ParticipantStatus.randomized
    if participant.withdrawal_kind is None:
        lifecycle.ensure_can_withdraw(participant.code, participant.status)
    leaving.ensure_can_leave(
        participant.code,
        kind=leaving_.kind,
        previous=participant.withdrawal_kind,
        randomized=randomized,
    )
    on = leaving_.withdrawn_on or local_date(now, zone)
    leaving.check_date(
        on,
        today=local_date(now, zone),
        enrolled_on=local_date(participant.enrolled_at, zone) if participant.enrolled_at else None,
        previous_on=participant.withdrawn_on,
        randomized_on=local_date(participant.randomized_at, zone)
        if leaving_.kind is LeavingKind.intervention and participant.randomized_at
        else None,
    )
    changes: dict[str, Change] = {
        "withdrawal_kind": (participant.withdrawal_kind, leaving_.kind.value),
        "withdrawn_on": (_iso(participant.withdrawn_on), on.isoformat()),
        "withdrawal_category": (participant.withdrawal_category, leaving_.category.value),
    }
    # Always recorded (unchanged by the other kinds), so that `verify` tells these records
    # from those made before the column existed.
    stopped_on = (
        on if leaving_.kind is LeavingKind.intervention else participant.intervention_stopped_on
    )
    changes["intervention_stopped_on"] = (
        _iso(participant.intervention_stopped_on),
        _iso(stopped_on),
    )
    participant.intervention_stopped_on = stopped_on
    previous = participant.status
    if leaving.leaves_study(leaving_.kind):
        cancelled = surveys.cancel_pending(
            session, study=study, participant_id=participant.id, now=now
        )
        stopped = outbox.cancel_for_participant(
            session,
            study_id=study.id,
            participant_code=participant.code,
            reason=f"participant left the study ({leaving_.kind.value})",
            now=now,
        )
        participant.status = ParticipantStatus.withdrawn
        participant.withdrawn_from = previous
        participant.withdrawn_at = now
        changes |= {
            "status": (previous, ParticipantStatus.withdrawn),
            "surveys_cancelled": (None, cancelled),
            "messages_stopped": (None, stopped),
        }
    participant.withdrawal_kind = leaving_.kind.value
    participant.withdrawn_on = on
    participant.withdrawal_category = leaving_.category.value
    participant.withdrawal_reason = leaving_.reason
    session.flush()
    audit.record(
        session,
        AuditAction.participant_withdrawn,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        reason=leaving_.reason,
        changes=changes,
    )
    return participant


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None
