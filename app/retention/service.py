"""The contact log and the locator (SPEC 11, issue 17 item 2): every attempt to reach a
participant, and the other people they allowed the team to ask after them.

What people wrote (notes, next steps, names, numbers) is sealed at rest; the audit
trail says only codes (method, outcome, row ids, counts). Alternate contacts are other
people's data: removing one clears what it held, and locking the study purges every one
(`purge_alternate_contacts`, a step of the lock). See docs/retention.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.models import User
from app.auth.principal import Principal
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.errors import AlternateContactGone, AlternateContactNotFound, FieldProblem, InvalidInput
from app.participants.lookup import get_participant
from app.participants.phones import to_e164
from app.randomization import blinding
from app.retention.models import (
    AlternateContact,
    ContactAttempt,
    hidden_indexes,
    shown_attempts,
)
from app.retention.schemas import (
    AlternateContactCreate,
    AlternateContactRead,
    ContactCreate,
    ContactRead,
)
from app.studies.definition import StudyDefinition
from app.studies.lifecycle import ensure_not_locked
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys.scheduling import local_date

NEXT_STEP_WITHIN = timedelta(days=366)  # how far ahead a next step may be set


# --- the contact log -------------------------------------------------------------------
def log_contact(
    session: Session, *, study: Study, code: str, data: ContactCreate, actor: Principal
) -> ContactRead:
    """Record one attempt to reach the participant (audited: method and outcome only)."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor)
    definition = definition_of(study)
    _check_contact(definition, data, actor=actor, now=now)
    attempt = ContactAttempt(
        study_id=study.id,
        site_id=participant.site_id,
        participant_id=participant.id,
        participant_code=participant.code,
        method=data.method.value,
        outcome=data.outcome.value,
        note=data.note,
        next_step=data.next_step,
        next_step_on=data.next_step_on,
        timepoint=data.timepoint,
        timepoint_index=keyed_hash(sealing_keys_of(session), "timepoint", data.timepoint),
        made_at=now,
        made_by=actor.id,
    )
    session.add(attempt)
    session.flush()
    # About a survey: named as survey records are (`CODE:timepoint`), so the history and
    # the audit trail leave it out for a role that may not see that timepoint.
    about = f"{participant.code}:{data.timepoint}" if data.timepoint else participant.code
    audit.record(
        session,
        AuditAction.contact_logged,
        actor=actor,
        entity_id=about,
        study_id=study.id,
        changes={
            "contact": (None, attempt.id),
            "method": (None, data.method.value),
            "outcome": (None, data.outcome.value),
        },
    )
    return _contact_read(attempt, actor.email)


def _check_contact(
    definition: StudyDefinition, data: ContactCreate, *, actor: Principal, now: datetime
) -> None:
    """The timepoint is one of the study's (that the caller sees: a blind role is told
    "no timepoint" of one only some arms have, whatever the participant's arm); the next
    step is set for today or later, within a year."""
    problems = []
    policy = blinding.policy_for(actor.role, definition)
    codes = {t.code for t in definition.schedule}
    if data.timepoint is not None and (
        data.timepoint not in codes or not policy.shows_timepoint(data.timepoint)
    ):
        problems.append(FieldProblem(("timepoint",), f"no timepoint {data.timepoint!r}"))
    if data.next_step_on is not None:
        today = local_date(now, definition.zone())
        if data.next_step_on < today:
            problems.append(
                FieldProblem(("next_step_on",), f"in the past (today is {today.isoformat()})")
            )
        elif data.next_step_on > today + NEXT_STEP_WITHIN:
            problems.append(FieldProblem(("next_step_on",), "more than a year ahead"))
    if problems:
        raise InvalidInput(problems)


def list_contacts(
    session: Session, *, study: Study, code: str, user: Principal, before_id: int, limit: int
) -> list[ContactRead]:
    """The participant's contact attempts, newest first, with who made each."""
    participant = get_participant(session, study=study, code=code, user=user)
    hidden = hidden_indexes(
        sealing_keys_of(session),
        blinding.policy_for(user.role, definition_of(study)).hidden_timepoints,
    )
    query = (
        select(ContactAttempt, User.email)
        .join(User, User.id == ContactAttempt.made_by)
        .where(ContactAttempt.participant_id == participant.id, shown_attempts(hidden))
    )
    if before_id:
        query = query.where(ContactAttempt.id < before_id)
    rows = session.execute(query.order_by(ContactAttempt.id.desc()).limit(limit))
    return [_contact_read(a, email) for a, email in rows]


def _contact_read(attempt: ContactAttempt, email: str) -> ContactRead:
    return ContactRead(
        id=attempt.id,
        participant=attempt.participant_code,
        method=attempt.method,
        outcome=attempt.outcome,
        note=attempt.note,
        next_step=attempt.next_step,
        next_step_on=attempt.next_step_on,
        timepoint=attempt.timepoint,
        made_at=attempt.made_at,
        made_by=email,
    )


# --- alternate contacts (the locator) ----------------------------------------------------
def add_alternate_contact(
    session: Session, *, study: Study, code: str, data: AlternateContactCreate, actor: Principal
) -> AlternateContactRead:
    """Record someone the participant allowed the team to ask after them: a phone (E.164,
    read in the study's `sms.region`), an email or both, and the day they allowed it."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor)
    definition = definition_of(study)
    phone = _check_alternate(definition, data, now=now)
    row = AlternateContact(
        study_id=study.id,
        site_id=participant.site_id,
        participant_id=participant.id,
        name=data.name,
        relation=data.relation,
        phone=phone,
        email=str(data.email) if data.email else None,
        permission_on=data.permission_on,
        created_at=now,
        created_by=actor.id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        AuditAction.alternate_contact_added,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        changes={
            "alternate_contact": (None, row.id),
            "phone": (None, phone is not None),
            "email": (None, data.email is not None),
        },
    )
    return _alternate_read(row, participant.code, actor.email)


def _check_alternate(
    definition: StudyDefinition, data: AlternateContactCreate, *, now: datetime
) -> str | None:
    """The phone in E.164 (or none); 422 when neither a phone nor an email is given,
    when the phone is not a number, or when the permission is dated in the future."""
    problems = []
    phone = None
    if data.phone:
        try:
            phone = to_e164(data.phone, region=definition.sms.region)
        except ValueError as error:
            problems.append(FieldProblem(("phone",), str(error)))
    elif data.email is None:
        problems.append(FieldProblem(("phone",), "give a phone number or an email (or both)"))
    today = local_date(now, definition.zone())
    if data.permission_on > today:
        problems.append(
            FieldProblem(("permission_on",), f"in the future (today is {today.isoformat()})")
        )
    if problems:
        raise InvalidInput(problems)
    return phone


def list_alternate_contacts(
    session: Session,
    *,
    study: Study,
    code: str,
    user: Principal,
    removed: bool,
    after_id: int,
    limit: int,
) -> list[AlternateContactRead]:
    """The participant's alternate contacts, oldest first (with `removed`, those taken
    off too, their values cleared)."""
    participant = get_participant(session, study=study, code=code, user=user)
    query = (
        select(AlternateContact, User.email)
        .join(User, User.id == AlternateContact.created_by)
        .where(AlternateContact.participant_id == participant.id, AlternateContact.id > after_id)
    )
    if not removed:
        query = query.where(AlternateContact.removed_at.is_(None))
    rows = session.execute(query.order_by(AlternateContact.id).limit(limit))
    return [_alternate_read(row, participant.code, email) for row, email in rows]


def remove_alternate_contact(
    session: Session, *, study: Study, code: str, contact_id: int, actor: Principal
) -> AlternateContactRead:
    """Take an alternate contact off (the participant withdrew their permission, or the
    person asked): what it held is cleared at once; 409 when already removed."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor)
    row = session.scalars(
        select(AlternateContact)
        .where(
            AlternateContact.id == contact_id,
            AlternateContact.participant_id == participant.id,
        )
        .with_for_update()
    ).first()
    if row is None:
        raise AlternateContactNotFound(f"no alternate contact {contact_id} of {code}")
    if row.removed_at is not None or row.purged_at is not None:
        raise AlternateContactGone(f"alternate contact {contact_id} was already removed")
    row.name = row.relation = row.phone = row.email = None
    row.removed_at = now
    session.flush()
    audit.record(
        session,
        AuditAction.alternate_contact_removed,
        actor=actor,
        entity_id=participant.code,
        study_id=study.id,
        changes={"alternate_contact": (row.id, None)},
    )
    creator = session.get_one(User, row.created_by)
    return _alternate_read(row, participant.code, creator.email)


def purge_alternate_contacts(
    session: Session, *, study: Study, actor: Principal | None, now: datetime
) -> int:
    """Clear what every alternate contact of the study holds (other people's data, kept
    no longer than the study runs) and mark it purged; audited with the count (when
    there was any). A step of the database lock; safe to run again (those purged
    already are left alone)."""
    result = session.execute(
        update(AlternateContact)
        .where(AlternateContact.study_id == study.id, AlternateContact.purged_at.is_(None))
        .values(name=None, relation=None, phone=None, email=None, purged_at=now)
        .execution_options(synchronize_session=False)
    )
    purged = int(getattr(result, "rowcount", 0) or 0)
    if not purged:  # nothing held: a study without alternate contacts locks as before
        return 0
    audit.record(
        session,
        AuditAction.alternate_contacts_purged,
        actor=actor,
        entity_id=study.slug,
        study_id=study.id,
        changes={"purged": (None, purged)},
    )
    return purged


def _alternate_read(row: AlternateContact, code: str, email: str) -> AlternateContactRead:
    return AlternateContactRead(
        id=row.id,
        participant=code,
        name=row.name,
        relation=row.relation,
        phone=row.phone,
        email=row.email,
        permission_on=row.permission_on,
        created_at=row.created_at,
        created_by=email,
        removed_at=row.removed_at,
        purged_at=row.purged_at,
    )
