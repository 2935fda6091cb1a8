"""Screening, consent, enrollment and withdrawal of participants."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.permissions import SITE_SCOPED_ROLES
from app.auth.principal import Principal
from app.errors import (
    CannotWithdraw,
    FieldProblem,
    Forbidden,
    InvalidEnrollment,
    InvalidInput,
    ParticipantNotFound,
    StudyLocked,
    StudyNotEnrolling,
)
from app.participants.models import Contact, Participant, ParticipantStatus
from app.participants.schemas import ParticipantCreate
from app.randomization.strata import stratum_key
from app.studies.models import Site, Study, StudyStatus
from app.studies.schemas import StudyDefinition
from app.studies.service import definition_of


def enroll(
    session: Session, *, study: Study, data: ParticipantCreate, actor: Principal, now: datetime
) -> Participant:
    """Record a screening; enroll the person when every criterion holds and consent is valid."""
    if study.status != StudyStatus.enrolling:
        raise StudyNotEnrolling(f"the study is {study.status}")
    definition = definition_of(study)
    site = next((s for s in study.sites if s.code == data.site.upper()), None)
    if site is not None and actor.role in SITE_SCOPED_ROLES and site.id not in actor.site_ids:
        raise Forbidden(f"you are not a coordinator of site {site.code}")
    problems = [FieldProblem(("site",), f"no site {data.site!r} in this study")] if not site else []
    reasons = _screening_problems(definition, data, problems)
    eligible = not reasons
    _strata_problems(definition, data, problems, required=eligible)
    _consent_problems(definition, data, problems, required=eligible)
    if eligible and data.contact is None:
        problems.append(FieldProblem(("contact",), "contact details are required to enroll"))
    if problems:
        raise InvalidEnrollment(problems)
    assert site is not None

    number = session.execute(
        update(Site)
        .where(Site.id == site.id)
        .values(last_participant_number=Site.last_participant_number + 1)
        .returning(Site.last_participant_number)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    factors = [f.code for f in definition.randomization.strata]
    participant = Participant(
        study_id=study.id,
        site_id=site.id,
        code=f"{study.code_prefix}-{site.code}-{number:04d}",
        status=ParticipantStatus.enrolled if eligible else ParticipantStatus.ineligible,
        screening=dict(data.screening),
        ineligible_reasons=reasons or None,
        strata=dict(data.strata) if data.strata else None,
        stratum=(
            stratum_key(
                site=site.code if definition.randomization.stratify_by_site else None,
                factors=factors,
                levels=data.strata,
            )
            if eligible
            else None
        ),
        consent_version=data.consent.version if eligible and data.consent else None,
        screened_at=now,
        enrolled_at=now if eligible else None,
        created_by=actor.id,
    )
    participant.site = site
    session.add(participant)
    session.flush()
    if eligible and data.contact is not None:
        # Identifying details stay out of the research row and out of the audit trail.
        session.add(
            Contact(
                participant_id=participant.id,
                name=data.contact.name,
                email=str(data.contact.email) if data.contact.email else None,
                phone=data.contact.phone,
            )
        )
    audit.record(
        session,
        actor=actor,
        action="participant.screened",
        entity_type="participant",
        entity_id=participant.code,
        study_id=study.id,
        now=now,
        changes={
            "site": audit.change(None, site.code),
            "screening": audit.change(None, participant.screening),
            "eligible": audit.change(None, eligible),
            "ineligible_reasons": audit.change(None, reasons or None),
        },
    )
    if eligible:
        audit.record(
            session,
            actor=actor,
            action="participant.enrolled",
            entity_type="participant",
            entity_id=participant.code,
            study_id=study.id,
            now=now,
            changes={
                "status": audit.change(None, ParticipantStatus.enrolled.value),
                "consent_version": audit.change(None, participant.consent_version),
                "strata": audit.change(None, participant.strata),
                "contact": audit.change(None, "recorded"),
            },
        )
    return participant


def _screening_problems(
    definition: StudyDefinition, data: ParticipantCreate, problems: list[FieldProblem]
) -> list[str]:
    """Check the answers; return the codes of the criteria that do not hold."""
    criteria = {c.code: c for c in definition.eligibility}
    for code in data.screening:
        if code not in criteria:
            problems.append(FieldProblem(("screening", code), "not a criterion of this study"))
    reasons = []
    for code, criterion in criteria.items():
        if code not in data.screening:
            problems.append(FieldProblem(("screening", code), "answer every criterion"))
        elif data.screening[code] != criterion.must_be:
            reasons.append(code)
    return reasons


def _strata_problems(
    definition: StudyDefinition,
    data: ParticipantCreate,
    problems: list[FieldProblem],
    *,
    required: bool,
) -> None:
    factors = {f.code: f for f in definition.randomization.strata}
    for code, level in data.strata.items():
        if code not in factors:
            problems.append(FieldProblem(("strata", code), "not a stratification factor"))
        elif level not in factors[code].levels:
            allowed = ", ".join(factors[code].levels)
            problems.append(FieldProblem(("strata", code), f"{level!r} is not one of {allowed}"))
    if required:
        for code in factors:
            if code not in data.strata:
                problems.append(FieldProblem(("strata", code), "required to enroll"))


def _consent_problems(
    definition: StudyDefinition,
    data: ParticipantCreate,
    problems: list[FieldProblem],
    *,
    required: bool,
) -> None:
    if data.consent is None:
        if required:
            problems.append(FieldProblem(("consent",), "consent is required to enroll"))
    elif data.consent.version not in definition.consent_versions:
        accepted = ", ".join(definition.consent_versions)
        problems.append(
            FieldProblem(
                ("consent", "version"),
                f"consent version {data.consent.version!r} is not accepted ({accepted})",
            )
        )


def get_participant(
    session: Session, *, study: Study, code: str, user: Principal, lock: bool = False
) -> Participant:
    """The participant, if the user may see it (a coordinator: own sites only, else 404)."""
    query = select(Participant).where(Participant.study_id == study.id, Participant.code == code)
    if lock:
        query = query.with_for_update(of=Participant).execution_options(populate_existing=True)
    participant = session.scalars(query).first()
    if participant is None or not may_access_site(user, participant.site_id):
        raise ParticipantNotFound(f"no participant {code!r}")
    return participant


def may_access_site(user: Principal, site_id: int) -> bool:
    """Whether the user's role reaches a site's participants."""
    return user.role not in SITE_SCOPED_ROLES or site_id in user.site_ids


def list_participants(
    session: Session,
    *,
    study: Study,
    user: Principal,
    site: str | None,
    status: ParticipantStatus | None,
    after_id: int,
    limit: int,
) -> Sequence[Participant]:
    """Participants the user may see, oldest first, after a cursor."""
    query = select(Participant).where(Participant.study_id == study.id, Participant.id > after_id)
    if site is not None:
        site_row = next((s for s in study.sites if s.code == site.upper()), None)
        if site_row is None:
            raise InvalidInput(
                [FieldProblem(("site",), f"no site {site!r} in this study")], part="query"
            )
        if not may_access_site(user, site_row.id):
            raise Forbidden(f"you are not a coordinator of site {site_row.code}")
        query = query.where(Participant.site_id == site_row.id)
    elif user.role in SITE_SCOPED_ROLES:
        query = query.where(Participant.site_id.in_(user.site_ids))
    if status is not None:
        query = query.where(Participant.status == status)
    return session.scalars(query.order_by(Participant.id).limit(limit)).all()


def load_contact(session: Session, *, participant: Participant) -> Contact | None:
    """The participant's contact details (a separate table, read on purpose)."""
    return session.get(Contact, participant.id)


def withdraw(
    session: Session, *, study: Study, code: str, reason: str, actor: Principal, now: datetime
) -> Participant:
    """Withdraw an enrolled or randomized participant; an allocation is kept (ITT)."""
    if study.status == StudyStatus.locked:
        raise StudyLocked("the study is locked")
    participant = get_participant(session, study=study, code=code, user=actor, lock=True)
    if participant.status not in (ParticipantStatus.enrolled, ParticipantStatus.randomized):
        raise CannotWithdraw(f"the participant is {participant.status}")
    previous = participant.status
    participant.status = ParticipantStatus.withdrawn
    participant.withdrawn_from = previous
    participant.withdrawn_at = now
    participant.withdrawal_reason = reason
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="participant.withdrawn",
        entity_type="participant",
        entity_id=participant.code,
        study_id=study.id,
        now=now,
        reason=reason,
        changes={"status": audit.change(previous, ParticipantStatus.withdrawn.value)},
    )
    return participant
