"""Held sign-ups reviewed by a coordinator of their site or an admin (accept, reject
with a reason), and the check of a self-reported diagnosis before randomization."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import may_access_site
from app.auth.principal import Principal, Role
from app.consent import service as consents
from app.consent.models import Consent
from app.errors import AlreadyVerified, ApplicantDecided, ApplicantNotFound
from app.join import service
from app.join.models import Applicant, ApplicantState
from app.outbox.models import MessageKind
from app.outbox.service import enqueue
from app.participants import service as participants
from app.participants.models import Participant
from app.studies.models import Site, Study

LIST_LIMIT = 500  # the queue shows the newest this many


def applicants(
    session: Session, *, study: Study, user: Principal, state: ApplicantState | None
) -> Sequence[Applicant]:
    """Sign-ups of the user's sites (all for admins), newest first; by default those
    waiting for a decision."""
    query = select(Applicant).where(Applicant.study_id == study.id)
    query = query.where(Applicant.state == (state or ApplicantState.held))
    if user.role is not Role.admin:
        query = query.where(Applicant.site_id.in_(user.site_ids))
    return session.scalars(query.order_by(Applicant.id.desc()).limit(LIST_LIMIT)).all()


def _held(session: Session, *, study: Study, applicant_id: int, user: Principal) -> Applicant:
    applicant = session.scalars(
        select(Applicant)
        .where(Applicant.id == applicant_id, Applicant.study_id == study.id)
        .with_for_update()
    ).first()
    if applicant is None or not may_access_site(user, applicant.site_id):
        raise ApplicantNotFound(f"no applicant {applicant_id}")
    if applicant.state != ApplicantState.held:
        raise ApplicantDecided(f"applicant {applicant_id} is {applicant.state}")
    return applicant


def accept(
    session: Session, *, study: Study, applicant_id: int, actor: Principal, now: datetime
) -> Applicant:
    """Enroll a held sign-up (it signed consent), or record a held screening that did
    not meet a criterion as the ineligible screening it is; audited, and the person is
    emailed their link."""
    applicant = _held(session, study=study, applicant_id=applicant_id, user=actor)
    label = f"{actor.email} (accepting a sign-up)"
    if applicant.ineligible_reasons:
        site = session.get_one(Site, applicant.site_id)
        participant = service.enroll_ineligible(
            session, applicant=applicant, study=study, site=site, actor_label=label
        )
        applicant.participant_id = participant.id
        applicant.state = ApplicantState.ineligible
    else:
        bot = service.held_as_bot(applicant)
        service.enroll(session, applicant=applicant, study=study, actor_label=label)
        if bot:  # its consent copy waited for this review
            for signed in session.scalars(
                select(Consent).where(Consent.applicant_id == applicant.id)
            ):
                consents.queue_copy(session, consent=signed, email=applicant.email, now=now)
        enqueue(
            session,
            kind=MessageKind.applicant_accepted,
            dedupe_key=f"applicant:{applicant.id}:accepted",
            subject_id=applicant.id,
            now=now,
            study_id=study.id,
            site_id=applicant.site_id,
        )
    _decided(session, applicant, study=study, actor=actor, now=now, reason=None)
    return applicant


def reject(
    session: Session,
    *,
    study: Study,
    applicant_id: int,
    reason: str,
    actor: Principal,
    now: datetime,
) -> Applicant:
    """Refuse a held sign-up, for a recorded reason (never shown to the person)."""
    applicant = _held(session, study=study, applicant_id=applicant_id, user=actor)
    applicant.state = ApplicantState.rejected
    _decided(session, applicant, study=study, actor=actor, now=now, reason=reason)
    return applicant


def _decided(
    session: Session,
    applicant: Applicant,
    *,
    study: Study,
    actor: Principal,
    now: datetime,
    reason: str | None,
) -> None:
    applicant.decided_at, applicant.decided_by = now, actor.id
    applicant.decision_reason = reason
    applicant.updated_at = now
    audit.record(
        session,
        AuditAction.applicant_rejected if reason else AuditAction.applicant_accepted,
        actor=actor,
        entity_id=f"applicant-{applicant.id}",
        study_id=study.id,
        reason=reason,
        changes={"state": (ApplicantState.held, applicant.state)},
    )


def verify(
    session: Session, *, study: Study, code: str, actor: Principal, now: datetime
) -> Participant:
    """A coordinator checked the self-reported diagnosis: randomization may go ahead."""
    participant = participants.get_participant(
        session, study=study, code=code, user=actor, for_update=True
    )
    if not participant.needs_verification:
        raise AlreadyVerified(f"{code} needs no verification")
    participant.needs_verification = False
    participant.verified_at, participant.verified_by = now, actor.id
    audit.record(
        session,
        AuditAction.participant_verified,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        changes={"needs_verification": (True, False)},
    )
    return participant
