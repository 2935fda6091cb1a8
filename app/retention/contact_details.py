"""Correcting a participant's contact details (SPEC 11: a wrong number is found on a call,
a participant moves or changes email). Only what the request names changes; the phone is
kept in E.164 (read in the study's `sms.region`, as at enrollment) and the keyed hashes
of email and phone are written again, so look-ups (an inbound text, a duplicate
sign-up) find the new values. The audit record says which fields changed, never their
values: the enrollment's record holds the contact sealed for `verify`, which from then on
leaves the contact of this participant unchecked (docs/contact-details.md)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.errors import FieldProblem, InvalidInput
from app.participants.lookup import get_participant
from app.participants.models import Contact
from app.participants.phones import to_e164
from app.retention.schemas import ContactCorrected, ContactCorrection
from app.studies import service as studies
from app.studies.lifecycle import ensure_not_locked
from app.studies.models import Study

FIELDS = ("name", "email", "phone")


def correct_contact(
    session: Session, *, study: Study, code: str, data: ContactCorrection, actor: Principal
) -> ContactCorrected:
    """Change the named fields (null clears an email or a phone); 422 naming the field
    when the phone is no number, when nothing is named, or when there are no contact
    details yet and no name is given."""
    ensure_not_locked(study.status)
    audit.lock_chain_head(session)
    participant = get_participant(session, study=study, code=code, user=actor, for_update=True)
    wanted = _checked(data, region=studies.definition_of(study).sms.region)
    contact = session.get(Contact, participant.id)
    if contact is None:
        if "name" not in wanted:
            raise InvalidInput([FieldProblem(("name",), "no contact details yet: give a name")])
        contact = Contact(participant_id=participant.id, name=wanted["name"])
        session.add(contact)
        changed = sorted(wanted)
    else:
        changed = sorted(f for f, value in wanted.items() if getattr(contact, f) != value)
    for field, value in wanted.items():
        setattr(contact, field, value)
    keys = sealing_keys_of(session)
    contact.email_index = keyed_hash(keys, "email", contact.email)
    contact.phone_index = keyed_hash(keys, "phone", contact.phone)
    session.flush()
    if changed:
        audit.record(
            session,
            AuditAction.participant_contact_corrected,
            actor=actor,
            entity_id=participant.code,
            study_id=study.id,
            changes={"fields": (None, changed)},
        )
    return ContactCorrected(participant=participant.code, changed=changed)


def _checked(data: ContactCorrection, *, region: str) -> dict[str, str | None]:
    """The fields the request names, the phone in E.164."""
    wanted: dict[str, str | None] = {}
    for field in FIELDS:
        if field in data.model_fields_set:
            value = getattr(data, field)
            wanted[field] = str(value) if value is not None else None
    problems = []
    if not wanted:
        problems.append(FieldProblem(("name",), "name at least one of name, email, phone"))
    if "name" in wanted and wanted["name"] is None:
        problems.append(FieldProblem(("name",), "a name cannot be removed"))
    phone = wanted.get("phone")
    if phone:
        try:
            wanted["phone"] = to_e164(phone, region=region)
        except ValueError as error:
            problems.append(FieldProblem(("phone",), str(error)))
    elif "phone" in wanted:
        wanted["phone"] = None
    if problems:
        raise InvalidInput(problems)
    return wanted
