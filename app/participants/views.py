"""Participant read models: what a role may see of a participant."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.auth.permissions import may_see_arms
from app.auth.principal import Principal
from app.participants.models import Participant
from app.participants.schemas import ContactDetails, ParticipantRead, ParticipantSummary
from app.participants.service import load_contact
from app.randomization.service import allocation_of, arm_label
from app.studies.models import Study
from app.studies.service import definition_of


def participant_summary(p: Participant) -> ParticipantSummary:
    return ParticipantSummary(
        code=p.code,
        site=p.site.code,
        status=p.status,
        strata=p.strata,
        screened_at=p.screened_at,
        enrolled_at=p.enrolled_at,
        randomized_at=p.randomized_at,
        withdrawn_at=p.withdrawn_at,
    )


def participant_read(
    session: Session, *, study: Study, participant: Participant, user: Principal
) -> ParticipantRead:
    """The full record; the arm only when the study's blinding lets this role see it."""
    definition = definition_of(study)
    contact = load_contact(session, participant=participant)
    arm = label = None
    if may_see_arms(user.role, definition.blinding.arm_visible_to):
        allocation = allocation_of(session, participant=participant)
        if allocation is not None:
            arm, label = allocation.arm, arm_label(definition, allocation.arm)
    summary = participant_summary(participant).model_dump()
    return ParticipantRead(
        **summary,
        screening=participant.screening,
        ineligible_reasons=participant.ineligible_reasons,
        consent_version=participant.consent_version,
        stratum=participant.stratum,
        withdrawal_reason=participant.withdrawal_reason,
        contact=(
            ContactDetails(name=contact.name, email=contact.email, phone=contact.phone)
            if contact
            else None
        ),
        arm=arm,
        arm_label=label,
        surveys=[],
    )
