"""Screening and enrollment: the form made from the study's definition, screened by the
same rule the API applies (`participants.screening`), sent once however often it is sent."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission
from app.console.deps import PREFIX, CheckedForm, Staff, console_router, needs, study_view
from app.console.forms import FormRefused, field_errors, problems_of, text
from app.console.shared import site_choices
from app.db.base import utcnow
from app.errors import (
    Conflict,
    FieldProblem,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidInput,
)
from app.idempotency import service as idempotency
from app.idempotency.service import StoredResponse
from app.participants import service as participants
from app.participants.lifecycle import ParticipantStatus
from app.participants.schemas import ParticipantCreate
from app.participants.screening import screen
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.studies.models import Study
from app.web.forms import Form, first

FORM_TTL = timedelta(hours=24)

router = console_router()

Enroller = Annotated[Staff, needs(Permission.enroll)]


def _may_randomize_now(definition: StudyDefinition, staff: Staff) -> bool:
    return not definition.randomization.requires_completed and staff.may(Permission.randomize)


def enroll_form(
    request: Request,
    staff: Staff,
    study: Study,
    *,
    form: Form | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The enrollment form, with what was sent and what is wrong with it."""
    definition = studies.definition_of(study)
    sites = site_choices(study, staff)
    values: dict[str, str] = {name: values[0] for name, values in (form or {}).items() if values}
    if len(sites) == 1:
        values.setdefault("site", sites[0][0])
    if len(definition.consent_versions) == 1:
        values.setdefault("consent", definition.consent_versions[0])
    values.setdefault(
        "consent-obtained_on", utcnow().astimezone(definition.zone()).date().isoformat()
    )
    context = {
        "sites": sites,
        "values": values,
        "errors": errors or {},
        "form_id": values.get("form_id") or secrets.token_urlsafe(16),
        "randomize_now": _may_randomize_now(definition, staff),
        "strata_choices": {
            f.code: [(level, f.label(level)) for level in f.levels]
            for f in definition.randomization.strata
        },
    }
    return study_view(
        request, staff, study, "console/enroll.html", context, status_code=status_code
    )


@router.get("/studies/{slug}/enroll")
def enroll_page(
    request: Request, slug: SlugPath, session: ReadSessionDep, staff: Enroller
) -> Response:
    """The screening and enrollment form, made from the study's definition."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return enroll_form(request, staff, study)


def _fields(definition: StudyDefinition) -> list[str]:
    return [
        "site",
        *(f"screening-{c.code}" for c in definition.eligibility),
        "consent",
        "consent-obtained_on",
        *(f"strata-{f.code}" for f in definition.randomization.strata),
        "contact-name",
        "contact-email",
        "contact-phone",
    ]


def _messages(definition: StudyDefinition) -> dict[str, str]:
    return {
        "site": "Choose the site the participant is enrolled at",
        **{
            f"screening-{c.code}": f"Select yes or no: {c.text[:1].lower()}{c.text[1:]}"
            for c in definition.eligibility
        },
        "consent": "Choose the consent form version the participant signed",
        "consent-obtained_on": "Enter the day consent was taken, like 2026-03-01, "
        "not in the future",
        **{
            f"strata-{f.code}": f"Choose the participant's {f.code.replace('_', ' ')}"
            for f in definition.randomization.strata
        },
        "contact": "Enter the participant's name",
        "contact-name": "Enter the participant's name (up to 200 characters)",
        "contact-email": "Enter an email address like name@example.org, or leave it empty",
        "contact-phone": "Enter a phone number of up to 64 characters",
    }


def _enrollment(
    definition: StudyDefinition, form: Form
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The API's enrollment document from the form, and every problem the screening rule
    (then the API's schema) finds in it. The eligible person's part of the form (consent,
    strata, contact) is sent only when the answers make the person eligible."""
    answers = {
        c.code: first(form, f"screening-{c.code}") == "yes"
        for c in definition.eligibility
        if first(form, f"screening-{c.code}") in ("yes", "no")
    }
    document: dict[str, Any] = {"site": first(form, "site")[:12], "screening": answers}
    outcome = screen(
        definition, answers=answers, consent_version=None, levels={}, has_contact=False
    )
    if outcome.eligible:
        contact = {key: text(form, f"contact-{key}") for key in ("name", "email", "phone")}
        document["consent"] = (
            {
                "version": first(form, "consent")[:64],
                # The day consent was taken; empty means today (the service's default).
                **({"obtained_on": day[:32]} if (day := text(form, "consent-obtained_on")) else {}),
            }
            if first(form, "consent")
            else None
        )
        document["strata"] = {
            f.code: first(form, f"strata-{f.code}")[:64]
            for f in definition.randomization.strata
            if first(form, f"strata-{f.code}")
        }
        document["contact"] = {k: v for k, v in contact.items() if v} if contact["name"] else None
        outcome = screen(
            definition,
            answers=answers,
            consent_version=first(form, "consent")[:64] or None,
            levels=document["strata"],
            has_contact=document["contact"] is not None,
        )
    problems = list(outcome.problems)
    try:
        ParticipantCreate.model_validate(document)
    except ValidationError as invalid:
        problems += problems_of(invalid)
    return document, problems


@router.post("/studies/{slug}/enroll")
def enroll(
    request: Request, slug: SlugPath, session: SessionDep, staff: Enroller, form: CheckedForm
) -> Response:
    """Screen and enroll (then randomize, if asked and the study allows it); the same
    form sent twice enrolls once, and the second send goes to the participant."""
    user = staff.user
    study = studies.get_study(session, slug=slug, user=user, lock=studies.RowLock.for_no_key_update)
    definition = studies.definition_of(study)
    document, problems = _enrollment(definition, form)

    def refused(found: list[FieldProblem]) -> FormRefused:
        errors = field_errors(
            found,
            fields=_fields(definition),
            messages=_messages(definition),
            aliases={"contact": "contact-name"},
        )
        page = enroll_form(request, staff, study, form=form, errors=errors, status_code=422)
        return FormRefused(page)

    if problems:
        raise refused(problems)
    data = ParticipantCreate.model_validate(document)
    form_id = first(form, "form_id")[:64] or secrets.token_urlsafe(16)
    content = json.dumps(
        sorted((k, v) for k, v in form.items() if k != "csrf_token"), ensure_ascii=False
    ).encode()
    claim = _claim_form(
        session, user_id=user.id, form_id=form_id, path=request.url.path, content=content
    )
    if isinstance(claim, StoredResponse):
        return RedirectResponse(claim.body, status_code=303)
    try:
        participant = participants.enroll(session, study=study, data=data, actor=user)
    except InvalidInput as invalid:  # raised on: nothing of this request is kept
        raise refused(invalid.problems) from None
    done = "enrolled" if participant.status == ParticipantStatus.enrolled else "screened"
    if (
        done == "enrolled"
        and first(form, "randomize") == "yes"
        and _may_randomize_now(definition, staff)
    ):
        participants.randomize(session, study=study, code=participant.code, actor=user)
        done = "randomized"
    target = f"{PREFIX}/studies/{study.slug}/participants/{participant.code}?done={done}"
    idempotency.complete(
        session, claim_id=claim, response=StoredResponse(303, target, "text/plain"), now=utcnow()
    )
    return RedirectResponse(target, status_code=303)


def _claim_form(
    session: Session, *, user_id: int, form_id: str, path: str, content: bytes
) -> int | StoredResponse:
    """Claim this copy of the form, in the request's transaction: a second send of it
    (a double click, a reload) waits for the first and then finds its answer; the same
    copy sent again with other answers (a page restored by the browser, then edited) is
    refused rather than taken for the first."""
    fingerprint = idempotency.fingerprint(method="POST", path=path, body=content)
    for _ in range(2):
        try:
            return idempotency.claim(
                session,
                scope=f"console:{user_id}",
                key=form_id,
                fingerprint=fingerprint,
                now=utcnow(),
                ttl=FORM_TTL,
            )
        except IdempotencyKeyReused:
            raise Conflict(
                "this form was already sent, with other answers: open the enrollment form "
                "again to enroll another person"
            ) from None
        except IdempotencyKeyInProgress:
            continue  # the first send committed meanwhile: its answer is there now
    raise IdempotencyKeyInProgress("this form is being sent; look at the participants list")
