"""The record page's retention sections (SPEC 11): the contact log (every attempt, and a
form to log one), the alternate contacts (list, add, remove) and a reason for each
missed survey. Each post calls the service the API calls; a refused form comes back
(422) with every problem beside its field and what was typed, nothing stored."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs, study_view
from app.console.forms import FormRefused, field_errors, text, validated
from app.console.shared import acting, back
from app.db.base import utcnow
from app.errors import InvalidInput
from app.participants import service as participants
from app.participants.models import Participant
from app.randomization import blinding
from app.retention import contact_details, missed, service
from app.retention.models import ContactMethod, ContactOutcome
from app.retention.rules import MISSED_REASON_LABELS
from app.retention.schemas import (
    MAX_NEXT_STEP,
    AlternateContactCreate,
    ContactCorrection,
    ContactCreate,
    MissedReasonIn,
)
from app.studies import service as studies
from app.studies.models import Study
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus, local_date
from app.surveys.service import timepoint_name

router = console_router()

Contacter = Annotated[Staff, needs(Permission.contact_participants)]
Timepoint = Annotated[str, Path(max_length=64)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]

METHODS = [
    (ContactMethod.phone.value, "Phone call"),
    (ContactMethod.text.value, "Text message"),
    (ContactMethod.email.value, "Email"),
    (ContactMethod.letter.value, "Letter"),
    (ContactMethod.in_person.value, "In person"),
]
OUTCOMES = [
    (ContactOutcome.reached.value, "Reached them"),
    (ContactOutcome.no_answer.value, "No answer"),
    (ContactOutcome.left_message.value, "Left a message"),
    (ContactOutcome.wrong_number.value, "Wrong number or address"),
    (ContactOutcome.declined.value, "They declined"),
    (ContactOutcome.other.value, "Other"),
]
CONTACT_FIELDS = ["method", "outcome", "note", "next_step", "next_step_on", "timepoint"]
CONTACT_MESSAGES = {
    "method": "Choose how you tried to reach them",
    "outcome": "Choose what happened",
    "next_step_on": "Enter the day to try again, like 2027-03-01: today or later",
}
ALTERNATE_FIELDS = ["name", "relation", "phone", "email", "permission"]
ALTERNATE_MESSAGES = {
    "name": "Enter the person's name",
    "relation": "Enter who they are to the participant, like sister or case manager",
    "email": "Enter an email address like name@example.org",
    "permission": "Confirm the participant agreed that we may contact this person",
    "permission_on": "Enter the day the participant agreed, like 2027-03-01: not in the future",
}
# The contact details form (`details`): named apart from the alternate contact's fields.
DETAILS_FIELDS = ["contact_name", "contact_email", "contact_phone"]
DETAILS_ALIASES = {"name": "contact_name", "email": "contact_email", "phone": "contact_phone"}
DETAILS_MESSAGES = {
    "contact_name": "Enter the participant's name",
    "contact_email": "Enter an email address like name@example.org, or leave it empty",
    "contact_phone": "Enter a phone number like 215-555-0123, or leave it empty",
}
MISSED_FIELDS = ["reason", "note"]
MISSED_MESSAGES = {"reason": "Choose why the survey was missed"}
DONE = {
    "contact_logged": "The contact attempt is logged.",
    "alternate_added": "The alternate contact is added.",
    "alternate_removed": "The alternate contact is removed: what it held is deleted.",
    "missed_reason": "The reason the survey was missed is recorded.",
    "contact_corrected": "The contact details are corrected.",
}


def section(
    session: Session,
    staff: Staff,
    study: Study,
    participant: Participant,
    *,
    typed: dict[str, Any] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any] | None:
    """The record page's retention sections (None for roles that may not contact
    participants); `typed` and `errors` by form (`contact`, `alternate`, `missed-{tp}`)."""
    if not staff.may(Permission.contact_participants):
        return None
    definition = studies.definition_of(study)
    policy = blinding.policy_for(staff.user.role, definition)
    zone = definition.zone()
    code = participant.code
    user = staff.user
    contacts = service.list_contacts(
        session, study=study, code=code, user=user, before_id=0, limit=100
    )
    alternates = service.list_alternate_contacts(
        session, study=study, code=code, user=user, removed=False, after_id=0, limit=100
    )
    detail = participants.detail(session, study=study, participant=participant, user=user)
    shown = [
        s.timepoint
        for s in detail.surveys
        if s.status == SurveyStatus.missed and policy.shows_timepoint(s.timepoint)
    ]
    found = session.execute(
        select(SurveyInstance.timepoint, SurveyInstance.missed_reason).where(
            SurveyInstance.participant_id == participant.id,
            SurveyInstance.timepoint.in_(shown),
        )
    )
    given = {timepoint: reason for timepoint, reason in found}
    missed_rows = [
        {"timepoint": tp, "name": timepoint_name(tp), "reason": given.get(tp)} for tp in shown
    ]
    return {
        "details": detail.contact,
        "contacts": contacts,
        "alternates": alternates,
        "missed": missed_rows,
        "methods": METHODS,
        "outcomes": OUTCOMES,
        "method_words": dict(METHODS),
        "outcome_words": dict(OUTCOMES),
        "reasons": list(MISSED_REASON_LABELS.items()),
        "timepoints": [
            (t.code, timepoint_name(t.code))
            for t in definition.schedule
            if policy.shows_timepoint(t.code)
        ],
        "today": local_date(utcnow(), zone),
        "zone": zone,
        "typed": typed or {},
        "errors": errors or {},
        "next_step_limit": MAX_NEXT_STEP,
    }


def _refused(
    request: Request,
    session: Session,
    staff: Staff,
    study: Study,
    participant: Participant,
    form_name: str,
    typed: dict[str, Any],
    errors: dict[str, str],
) -> FormRefused:
    """The retention page again (422): the refused form with its errors and what was typed."""
    context = {
        "participant": participant,
        "retention": section(
            session,
            staff,
            study,
            participant,
            typed={form_name: typed},
            errors={form_name: errors},
        ),
        "errors": errors,
        "form_name": form_name,
    }
    page = study_view(request, staff, study, "console/contacts.html", context, status_code=422)
    return FormRefused(page)


@router.post("/studies/{slug}/participants/{code}/contacts")
def log_contact(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Contacter,
    form: CheckedForm,
) -> Response:
    """Log a contact attempt; errors beside their fields."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    typed = {name: text(form, name) for name in CONTACT_FIELDS}
    document = {name: value for name, value in typed.items() if value}
    try:
        body = validated(ContactCreate, document)
        service.log_contact(session, study=study, code=code, data=body, actor=staff.user)
    except InvalidInput as invalid:
        errors = field_errors(invalid.problems, fields=CONTACT_FIELDS, messages=CONTACT_MESSAGES)
        raise _refused(
            request, session, staff, study, participant, "contact", typed, errors
        ) from None
    return back(study, f"/participants/{code}", done="contact_logged")


@router.post("/studies/{slug}/participants/{code}/alternate-contacts")
def add_alternate_contact(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Contacter,
    form: CheckedForm,
) -> Response:
    """Add an alternate contact, once the participant's permission is confirmed."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    typed = {name: text(form, name) for name in [*ALTERNATE_FIELDS, "permission_on"]}
    document: dict[str, Any] = {
        name: typed[name] for name in ("name", "relation", "phone", "email") if typed[name]
    }
    if typed["permission"] == "yes" and typed["permission_on"]:
        document["permission_on"] = typed["permission_on"]
    try:
        body = validated(AlternateContactCreate, document)
        service.add_alternate_contact(session, study=study, code=code, data=body, actor=staff.user)
    except InvalidInput as invalid:
        errors = field_errors(
            invalid.problems,
            fields=ALTERNATE_FIELDS,
            messages=ALTERNATE_MESSAGES,
            aliases={"permission_on": "permission"},
        )
        if "permission" in errors:  # not confirmed, or confirmed with a day that will not do
            confirmed = typed["permission"] == "yes"
            errors["permission"] = ALTERNATE_MESSAGES[
                "permission_on" if confirmed else "permission"
            ]
        raise _refused(
            request, session, staff, study, participant, "alternate", typed, errors
        ) from None
    return back(study, f"/participants/{code}", done="alternate_added")


@router.post("/studies/{slug}/participants/{code}/alternate-contacts/{contact_id}/remove")
def remove_alternate_contact(
    slug: SlugPath,
    code: CodePath,
    contact_id: RowId,
    session: SessionDep,
    staff: Contacter,
    form: CheckedForm,
) -> Response:
    """Remove an alternate contact (what it held is deleted)."""
    study = acting(session, slug, staff)
    service.remove_alternate_contact(
        session, study=study, code=code, contact_id=contact_id, actor=staff.user
    )
    return back(study, f"/participants/{code}", done="alternate_removed")


@router.post("/studies/{slug}/participants/{code}/contact")
def correct_contact(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    session: SessionDep,
    staff: Contacter,
    form: CheckedForm,
) -> Response:
    """Correct the participant's name, email or phone (an empty email or phone clears
    it); errors beside their fields."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    typed = {name: text(form, name) for name in DETAILS_FIELDS}
    document = {field: typed[name] or None for field, name in DETAILS_ALIASES.items()}
    document["name"] = typed["contact_name"]
    try:
        body = validated(ContactCorrection, document)
        contact_details.correct_contact(
            session, study=study, code=code, data=body, actor=staff.user
        )
    except InvalidInput as invalid:
        errors = field_errors(
            invalid.problems,
            fields=DETAILS_FIELDS,
            messages=DETAILS_MESSAGES,
            aliases=DETAILS_ALIASES,
        )
        raise _refused(
            request, session, staff, study, participant, "details", typed, errors
        ) from None
    return back(study, f"/participants/{code}", done="contact_corrected")


@router.post("/studies/{slug}/participants/{code}/surveys/{timepoint}/missed-reason")
def give_missed_reason(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: SessionDep,
    staff: Contacter,
    form: CheckedForm,
) -> Response:
    """Record why a missed survey was missed (409 page when it is not missed)."""
    study = acting(session, slug, staff)
    participant = participants.get_participant(session, study=study, code=code, user=staff.user)
    typed = {name: text(form, name) for name in MISSED_FIELDS}
    document = {name: value for name, value in typed.items() if value}
    try:
        body = validated(MissedReasonIn, document)
        missed.give_missed_reason(
            session, study=study, code=code, timepoint=timepoint, data=body, actor=staff.user
        )
    except InvalidInput as invalid:
        found = field_errors(invalid.problems, fields=MISSED_FIELDS, messages=MISSED_MESSAGES)
        errors = {f"reason-{timepoint}": "; ".join(found.values())}  # the row's one field
        form_name = f"missed-{timepoint}"
        raise _refused(
            request, session, staff, study, participant, form_name, typed, errors
        ) from None
    return back(study, f"/participants/{code}", done="missed_reason")
