"""Screening, enrollment, randomization, withdrawal and unblinding of participants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import may_access_site
from app.auth.principal import Principal
from app.consent import service as consents
from app.consent.models import Consent
from app.db.base import utcnow
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.errors import (
    FieldProblem,
    Forbidden,
    InvalidEnrollment,
    NotRandomized,
    NotVerified,
    TimepointNotCompleted,
)
from app.participants import lifecycle, relink
from app.participants.codes import next_code
from app.participants.leaving import LeavingCategory, LeavingKind
from app.participants.lifecycle import ParticipantStatus
from app.participants.lookup import find_by_contact as find_by_contact
from app.participants.lookup import get_participant as get_participant
from app.participants.lookup import list_participants as list_participants
from app.participants.lookup import verify_allocations as verify_allocations
from app.participants.models import Contact, Participant
from app.participants.phones import to_e164
from app.participants.schemas import (
    ContactDetails,
    ParticipantCreate,
    ParticipantDetail,
    ShownArm,
    SurveyView,
)
from app.participants.screening import exclusion_labels as screening_labels
from app.participants.screening import screen
from app.participants.withdrawal import Leaving, record_leaving
from app.randomization import blinding
from app.randomization import service as randomization
from app.randomization.models import Allocation
from app.studies import service as studies
from app.studies.definition import Anchor
from app.studies.lifecycle import ensure_enrolling, ensure_not_locked
from app.studies.models import Study
from app.surveys import service as surveys
from app.surveys.scheduling import SurveyStatus


@dataclass(frozen=True)
class SelfEnrolled:
    """How a person who signed up through the public link is recorded (SPEC 10): no
    staff actor, their language, and whether a coordinator must verify the diagnosis."""

    language: str
    needs_verification: bool
    actor_label: str = "participant"


def enroll(
    session: Session,
    *,
    study: Study,
    data: ParticipantCreate,
    actor: Principal | None,
    joined: SelfEnrolled | None = None,
) -> Participant:
    """Record a screening; enroll the person when every criterion holds and consent is
    valid. `actor` is None only with `joined` (a sign-up through the public link)."""
    ensure_enrolling(study.status)
    assert (actor is None) == (joined is not None)
    definition = studies.definition_of(study)
    site = studies.find_site(study, data.site)
    if site is not None and actor is not None and not may_access_site(actor, site.id):
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
    data, phone_problem = _phone_in_e164(data, region=definition.sms.region, lenient=joined)
    problems += phone_problem
    if problems:
        raise InvalidEnrollment(problems)
    assert site is not None
    eligible = outcome.eligible
    now = audit.lock_chain_head(session).at  # before the site's row: see its lock order
    code = next_code(session, prefix=study.code_prefix, site=site, eligible=eligible)
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
        created_by=actor.id if actor else None,
    )
    if joined is not None:
        participant.source = "join"
        participant.language = joined.language
        participant.needs_verification = eligible and joined.needs_verification
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
    in_person = None
    if eligible and data.consent is not None and actor is not None:
        # The consent taken in person, by the enrolling user (SPEC 10); a person who
        # signed up online signed electronically (`join`: attached to them after this).
        in_person = consents.record_in_person(
            session,
            study=study,
            site_id=site.id,
            participant_id=participant.id,
            participant_code=participant.code,
            version=data.consent.version,
            obtained_on=data.consent.obtained_on,
            actor=actor,
            now=now,
            at=("consent",),
            enrolling=True,
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
        actor_label=joined.actor_label if joined else audit.SYSTEM_ACTOR,
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
            actor_label=joined.actor_label if joined else audit.SYSTEM_ACTOR,
            entity_id=participant.code,
            study_id=study.id,
            changes={
                "status": (None, ParticipantStatus.enrolled),
                "consent_version": (None, participant.consent_version),
                "strata": (None, participant.strata),
                # Sealed in the trail, so `verify` can compare the stored contact.
                "contact": (None, _contact_values(data.contact)),
                # The consent taken in person (SPEC 10), in this record rather than one of
                # its own: enrolling is the hot path.
                "consent": (None, _in_person_values(in_person, actor)),
            },
        )
    return participant


def _phone_in_e164(
    data: ParticipantCreate, *, region: str, lenient: SelfEnrolled | None
) -> tuple[ParticipantCreate, list[FieldProblem]]:
    """The enrollment with its phone number in E.164 (SPEC 11), read as dialled in the
    study's `sms.region`; a problem naming the field when it is no number. A sign-up
    through the public link keeps a number as typed (its form checked it loosely): a
    coordinator corrects it, and texts to it fail with a reason until then."""
    if data.contact is None or not data.contact.phone:
        return data, []
    try:
        e164 = to_e164(data.contact.phone, region=region)
    except ValueError as error:
        if lenient is not None:
            return data, []
        return data, [FieldProblem(("contact", "phone"), str(error))]
    contact = data.contact.model_copy(update={"phone": e164})
    return data.model_copy(update={"contact": contact}), []


def _in_person_values(consent: Consent | None, actor: Principal | None) -> dict[str, Any] | None:
    if consent is None or actor is None or consent.obtained_on is None:
        return None
    return {
        "id": consent.id,
        "method": "in_person",
        "obtained_on": consent.obtained_on.isoformat(),
        "obtained_by": actor.email,
    }


def enroll_self(
    session: Session,
    *,
    study: Study,
    site: str,
    screening: dict[str, bool],
    strata: dict[str, str] | None,
    consent_version: str | None,
    contact: tuple[str, str | None, str | None] | None,
    joined: SelfEnrolled,
) -> Participant:
    """`enroll` for a person who signed up through the public link (no staff actor):
    `contact` is (name, email, phone); ineligible screenings carry none."""
    data = ParticipantCreate.model_validate(
        {
            "site": site,
            "screening": screening,
            "consent": {"version": consent_version} if consent_version else None,
            "strata": strata or {},
            "contact": (
                {"name": contact[0], "email": contact[1], "phone": contact[2]} if contact else None
            ),
        }
    )
    return enroll(session, study=study, data=data, actor=None, joined=joined)


def _contact_values(contact: ContactDetails | None) -> dict[str, str | None] | None:
    if contact is None:
        return None
    email = str(contact.email) if contact.email else None
    return {"name": contact.name, "email": email, "phone": contact.phone}


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
    labels = exclusion_labels(study=study, codes=participant.ineligible_reasons)
    return ParticipantDetail(participant, contact, arm, lines, labels)


def exclusion_labels(*, study: Study, codes: Sequence[str] | None) -> list[str] | None:
    """The criteria a screening failed, as CONSORT shows them (see `Criterion`)."""
    return screening_labels(studies.definition_of(study), codes)


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
    session: Session,
    *,
    study: Study,
    code: str,
    reason: str,
    actor: Principal,
    kind: LeavingKind = LeavingKind.follow_up,
    withdrawn_on: date | None = None,
    category: LeavingCategory = LeavingCategory.other,
) -> Participant:
    """Record that the participant leaves, by kind (see `participants.leaving`); an
    allocation is kept (ITT)."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor, for_update=True)
    return record_leaving(
        session,
        study=study,
        participant=participant,
        leaving_=Leaving(reason, kind, withdrawn_on, category),
        actor=actor,
        now=now,
    )


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
    if participant.needs_verification:
        raise NotVerified(f"{participant.code}'s self-reported diagnosis is not verified yet")
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
    channels = relink.channels_of(participant, study)
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
                channels=channels,
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
        session,
        study=study,
        participant_id=participant.id,
        timepoint=timepoint,
        actor=actor,
        channels=channels,
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
