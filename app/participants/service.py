"""Screening, enrollment, randomization, withdrawal and unblinding of participants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import may_access_site, reachable_sites
from app.auth.principal import Principal
from app.db.base import utcnow
from app.db.sealed import keyed_hash
from app.db.server_key import keys_of, sealing_keys_of
from app.errors import (
    FieldProblem,
    Forbidden,
    InvalidEnrollment,
    InvalidInput,
    NotRandomized,
    ParticipantNotFound,
    TimepointNotCompleted,
)
from app.participants import lifecycle, relink
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.participants.schemas import (
    ContactDetails,
    ParticipantCreate,
    ParticipantDetail,
    ShownArm,
    SurveyView,
)
from app.participants.screening import screen
from app.randomization import blinding
from app.randomization import service as randomization
from app.randomization.models import Allocation
from app.randomization.verification import Finding, ParticipantFacts
from app.studies import service as studies
from app.studies.definition import Anchor
from app.studies.lifecycle import ensure_enrolling, ensure_not_locked
from app.studies.models import Site, Study
from app.surveys import service as surveys
from app.surveys.scheduling import SurveyStatus


def enroll(
    session: Session, *, study: Study, data: ParticipantCreate, actor: Principal
) -> Participant:
    """Record a screening; enroll the person when every criterion holds and consent is valid."""
    ensure_enrolling(study.status)
    definition = studies.definition_of(study)
    site = studies.find_site(study, data.site)
    if site is not None and not may_access_site(actor, site.id):
        raise Forbidden(f"you are not a coordinator of site {site.code}")
    problems = [FieldProblem(("site",), f"no site {data.site!r} in this study")] if not site else []
    outcome = screen(
        definition,
        answers=data.screening,
        consent_version=data.consent.version if data.consent else None,
        levels=data.strata,
        has_contact=data.contact is not None,
    )
    problems += outcome.problems
    if problems:
        raise InvalidEnrollment(problems)
    assert site is not None
    eligible = outcome.eligible
    now = audit.lock_chain_head(session).at  # before the site's row: see its lock order
    number = _next_participant_number(session, site=site)
    code = f"{study.code_prefix}-{site.code}-{number:04d}"
    participant = Participant(
        study_id=study.id,
        site_id=site.id,
        code=code,
        export_order=studies.export_order_of(session, study, code),
        status=lifecycle.screened(eligible=eligible),
        screening=dict(data.screening),
        ineligible_reasons=outcome.ineligible_reasons or None,
        strata=dict(data.strata) if data.strata else None,
        stratum=definition.plan().stratum_of(site=site.code, levels=data.strata)
        if eligible
        else None,
        consent_version=data.consent.version if eligible and data.consent else None,
        screened_at=now,
        enrolled_at=now if eligible else None,
        created_by=actor.id,
    )
    participant.site = site
    session.add(participant)
    session.flush()
    if eligible:
        surveys.schedule(
            session,
            study=study,
            participant_id=participant.id,
            participant_code=participant.code,
            site_id=site.id,
            anchor=Anchor.enrollment,
            anchor_at=now,
        )
    if eligible and data.contact is not None:
        # Identifying details stay out of the research row and out of the audit trail;
        # sealed at rest, with keyed hashes of email and phone for exact look-ups.
        email = str(data.contact.email) if data.contact.email else None
        keys = sealing_keys_of(session)
        session.add(
            Contact(
                participant_id=participant.id,
                name=data.contact.name,
                email=email,
                phone=data.contact.phone,
                email_index=keyed_hash(keys, "email", email),
                phone_index=keyed_hash(keys, "phone", data.contact.phone),
            )
        )
    audit.record(
        session,
        AuditAction.participant_screened,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        changes={
            "site": (None, site.code),
            "screening": (None, participant.screening),
            "eligible": (None, eligible),
            "ineligible_reasons": (None, participant.ineligible_reasons),
        },
    )
    if eligible:
        audit.record(
            session,
            AuditAction.participant_enrolled,
            actor=actor,
            entity_id=participant.code,
            study_id=study.id,
            changes={
                "status": (None, ParticipantStatus.enrolled),
                "consent_version": (None, participant.consent_version),
                "strata": (None, participant.strata),
                # Sealed in the trail, so `verify` can compare the stored contact.
                "contact": (None, _contact_values(data.contact)),
            },
        )
    return participant


def _contact_values(contact: ContactDetails | None) -> dict[str, str | None] | None:
    if contact is None:
        return None
    email = str(contact.email) if contact.email else None
    return {"name": contact.name, "email": email, "phone": contact.phone}


def _next_participant_number(session: Session, *, site: Site) -> int:
    """The site's next participant number, counted under the site row's lock."""
    return session.execute(
        update(Site)
        .where(Site.id == site.id)
        .values(last_participant_number=Site.last_participant_number + 1)
        .returning(Site.last_participant_number)
        .execution_options(synchronize_session=False)
    ).scalar_one()


def get_participant(
    session: Session, *, study: Study, code: str, user: Principal, for_update: bool = False
) -> Participant:
    """The participant, if the user may see it (a coordinator: own sites only, else 404);
    with `for_update`, its row stays locked to the end of the transaction."""
    query = select(Participant).where(Participant.study_id == study.id, Participant.code == code)
    if for_update:
        query = query.with_for_update(of=Participant).execution_options(populate_existing=True)
    participant = session.scalars(query).first()
    if participant is None or not may_access_site(user, participant.site_id):
        raise ParticipantNotFound(f"no participant {code!r}")
    return participant


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
        site_row = studies.find_site(study, site)
        if site_row is None:
            raise InvalidInput(
                [FieldProblem(("site",), f"no site {site!r} in this study")], part="query"
            )
        if not may_access_site(user, site_row.id):
            raise Forbidden(f"you are not a coordinator of site {site_row.code}")
        query = query.where(Participant.site_id == site_row.id)
    else:
        sites = reachable_sites(user)
        if sites is not None:
            query = query.where(Participant.site_id.in_(sites))
    if status is not None:
        query = query.where(Participant.status == status)
    return session.scalars(query.order_by(Participant.id).limit(limit)).all()


def detail(
    session: Session, *, study: Study, participant: Participant, user: Principal
) -> ParticipantDetail:
    """The participant with contact details, surveys (with the link of an open one),
    and the arm, each as the user's blinding policy allows."""
    contact = session.get(Contact, participant.id)
    definition = studies.definition_of(study)
    policy = blinding.policy_for(user.role, definition)
    now = utcnow()
    lines = []
    for instance in surveys.instances_of(session, participant_id=participant.id):
        if not policy.shows_timepoint(instance.timepoint):
            continue
        current = surveys.status_of(instance, definition=definition, now=now)
        shows_link = current is SurveyStatus.open and policy.shows_link(instance.timepoint)
        token = surveys.link_token(session, instance) if shows_link else None
        lines.append(
            SurveyView(
                instance.timepoint,
                current,
                instance.opens_on,
                instance.closes_on,
                token,
                link_withheld=current is SurveyStatus.open and not shows_link,
            )
        )
    arm = _shown_arm(session, study, participant, user)
    return ParticipantDetail(participant, contact, arm, lines)


def _shown_arm(
    session: Session,
    study: Study,
    participant: Participant,
    user: Principal,
    allocation: Allocation | None = None,
) -> ShownArm | None:
    definition = studies.definition_of(study)
    if not blinding.policy_for(user.role, definition).arms:
        return None
    if allocation is None:
        allocation = randomization.allocation_of(session, participant_id=participant.id)
    if allocation is None:
        return ShownArm(None, None)
    return ShownArm(allocation.arm, definition.arm_label(allocation.arm))


def withdraw(
    session: Session, *, study: Study, code: str, reason: str, actor: Principal
) -> Participant:
    """Withdraw an enrolled or randomized participant; an allocation is kept (ITT)."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor, for_update=True)
    lifecycle.ensure_can_withdraw(participant.code, participant.status)
    cancelled = surveys.cancel_pending(session, study=study, participant_id=participant.id, now=now)
    previous = participant.status
    participant.status = ParticipantStatus.withdrawn
    participant.withdrawn_from = previous
    participant.withdrawn_at = now
    participant.withdrawal_reason = reason
    session.flush()
    audit.record(
        session,
        AuditAction.participant_withdrawn,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        reason=reason,
        changes={
            "status": (previous, ParticipantStatus.withdrawn),
            "surveys_cancelled": (None, cancelled),
        },
    )
    return participant


@dataclass(frozen=True)
class Randomized:
    participant: Participant
    arm: ShownArm | None  # only when the caller may see arms


def randomize(session: Session, *, study: Study, code: str, actor: Principal) -> Randomized:
    """Give the participant the next slot of their stratum and mark them randomized,
    in one transaction (locks: study row by the caller, audit head, participant,
    stratum)."""
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor, for_update=True)
    lifecycle.ensure_can_randomize(participant.code, participant.status, participant.withdrawn_from)
    ensure_enrolling(study.status)
    _ensure_required_surveys_completed(session, study=study, participant=participant)
    assert participant.stratum is not None
    allocation = randomization.allocate(
        session,
        study_id=study.id,
        plan=studies.plan_of(study),
        secret=studies.secret_of(session, study),
        stratum=participant.stratum,
        participant_id=participant.id,
        participant_code=participant.code,
        actor=actor,
    )
    participant.status = ParticipantStatus.randomized
    participant.randomized_at = now
    surveys.schedule(
        session,
        study=study,
        participant_id=participant.id,
        participant_code=participant.code,
        site_id=participant.site_id,
        anchor=Anchor.randomization,
        anchor_at=now,
        arm=allocation.arm,
    )
    session.flush()
    audit.record(
        session,
        AuditAction.participant_randomized,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        # The arm stays out of the trail: it is read by roles that may be blind.
        changes={
            "status": (ParticipantStatus.enrolled, participant.status),
            "stratum": (None, participant.stratum),
            "sequence": (None, allocation.sequence),
            "block": (None, allocation.block),
            "position": (None, allocation.position),
        },
    )
    return Randomized(participant, _shown_arm(session, study, participant, actor, allocation))


def _ensure_required_surveys_completed(
    session: Session, *, study: Study, participant: Participant
) -> None:
    """The study's `requires_completed` timepoints must be completed first (409 naming
    them; no slot is taken)."""
    required = studies.definition_of(study).randomization.requires_completed
    done = surveys.completed_timepoints(session, participant_id=participant.id)
    missing = [timepoint for timepoint in required if timepoint not in done]
    if missing:
        raise TimepointNotCompleted(
            f"{participant.code} must complete the {', '.join(missing)} survey first"
        )


@dataclass(frozen=True)
class Reissued:
    """A survey's new link as its actor is told of it."""

    token: str | None  # None: withheld by the actor's blinding policy
    # Whether the new link is on its way to the participant: queued, or None when not
    # said (a blind actor and a survey only some arms have: answered alike for every arm).
    emailed: bool | None
    why_not: str | None = None  # when not emailed: relink.NO_EMAIL or relink.NOT_OPEN


def reissue(
    session: Session, *, study: Study, code: str, timepoint: str, actor: Principal
) -> Reissued:
    """A new link for one of the participant's surveys (the old one is dead), emailed to
    the participant in the same transaction when the survey is open (SPEC: a reissued
    link is sent to the participant); its token unless the actor's blinding policy
    withholds it. For a blind actor and a survey only some arms have, the answer is
    the same whether or not the participant has it (and acts only where they do)."""
    participant = get_participant(session, study=study, code=code, user=actor)
    policy = blinding.policy_for(actor.role, studies.definition_of(study))
    alike = policy.answers_alike(timepoint)
    if alike and not surveys.is_replaceable(
        session, study=study, participant_id=participant.id, timepoint=timepoint
    ):
        surveys.record_request(
            session,
            study=study,
            participant_code=participant.code,
            timepoint=timepoint,
            action=AuditAction.survey_link_reissued,
            actor=actor,
        )
        return Reissued(None, None)
    instance = surveys.reissue(
        session, study=study, participant_id=participant.id, timepoint=timepoint, actor=actor
    )
    why_not = relink.email_new_link(session, study=study, instance=instance)
    token = surveys.link_token(session, instance) if policy.shows_link(timepoint) else None
    if alike:
        return Reissued(token, None)
    return Reissued(token, why_not is None, why_not)


def reissue_link(
    session: Session, *, study: Study, code: str, timepoint: str, actor: Principal
) -> str | None:
    """The token of `reissue` (None when withheld)."""
    return reissue(session, study=study, code=code, timepoint=timepoint, actor=actor).token


def resend_invitation(
    session: Session, *, study: Study, code: str, timepoint: str, actor: Principal
) -> bool:
    """Send the invitation of one of the participant's open surveys again; whether the
    actor may be told it was queued (not for a blind actor and a survey only some arms
    have: the answer is the same whether or not the participant has it)."""
    participant = get_participant(session, study=study, code=code, user=actor)
    policy = blinding.policy_for(actor.role, studies.definition_of(study))
    if policy.answers_alike(timepoint):
        if surveys.is_open(
            session, study=study, participant_id=participant.id, timepoint=timepoint
        ):
            surveys.resend_invitation(
                session,
                study=study,
                participant_id=participant.id,
                timepoint=timepoint,
                actor=actor,
            )
        else:
            surveys.record_request(
                session,
                study=study,
                participant_code=participant.code,
                timepoint=timepoint,
                action=AuditAction.survey_invitation_resent,
                actor=actor,
            )
        return False
    surveys.resend_invitation(
        session, study=study, participant_id=participant.id, timepoint=timepoint, actor=actor
    )
    return True


def unblind(
    session: Session, *, study: Study, code: str, reason: str, actor: Principal
) -> tuple[Participant, str, str]:
    """Reveal one participant's arm (code and label), for a recorded reason."""
    participant = get_participant(session, study=study, code=code, user=actor)
    allocation = randomization.allocation_of(session, participant_id=participant.id)
    if allocation is None:
        raise NotRandomized(f"{code} has no allocation")
    audit.record(
        session,
        AuditAction.participant_unblinded,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        reason=reason,
    )
    return participant, allocation.arm, studies.definition_of(study).arm_label(allocation.arm)


def verify_allocations(session: Session, *, study: Study) -> list[Finding]:
    """Re-derive every allocation of the study and check it against its participants."""
    participants = {
        p.id: ParticipantFacts(code=p.code, stratum=p.stratum, was_randomized=p.was_randomized)
        for p in session.scalars(select(Participant).where(Participant.study_id == study.id))
    }
    return randomization.verify(
        session,
        study_id=study.id,
        slug=study.slug,
        plan=studies.plan_of(study),
        secret=studies.secret_of(session, study),
        commitment=study.commitment,
        participants=participants,
    )


def find_by_contact(
    session: Session,
    *,
    study: Study,
    user: Principal,
    email: str | None = None,
    phone: str | None = None,
) -> Sequence[Participant]:
    """Participants of the user's sites whose email or phone is exactly this one, found
    through the keyed hashes beside the sealed contact details (nothing is decrypted)."""
    keys = keys_of(session)
    wanted = [
        column == digest
        for column, digest in (
            (Contact.email_index, keyed_hash(keys, "email", email)),
            (Contact.phone_index, keyed_hash(keys, "phone", phone)),
        )
        if digest is not None
    ]
    if not wanted:
        return []
    query = (
        select(Participant)
        .join(Contact, Contact.participant_id == Participant.id)
        .where(Participant.study_id == study.id, or_(*wanted))
    )
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(Participant.site_id.in_(sites))
    return session.scalars(query.order_by(Participant.id)).all()
