"""What the coordinators' worklist shows of self-enrolled people (SPEC 10): who failed
the consent quiz twice and needs "a call to go over the consent" (a sign-up's
`applicants.needs_call`; a re-consenting participant's `participants.needs_call`), until
a coordinator marks the call done (the flag cleared, audited `consent.call_done`); and
whose date of birth did not match at their first survey, while their check waits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import SessionDep
from app.api.params import SlugPath
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs
from app.console.shared import acting, back, reachable
from app.errors import NotFound
from app.join.models import Applicant, ApplicantState
from app.participants.models import Participant
from app.studies.models import Study

router = console_router()

Reviewer = Annotated[Staff, needs(Permission.review_applicants)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LIMIT = 200  # rows of each list on the worklist
_LIVE = (
    ApplicantState.contact,
    ApplicantState.consent,
    ApplicantState.held,
    ApplicantState.enrolled,
)


def worklist_rows(session: Session, staff: Staff, study: Study) -> dict[str, Any] | None:
    """The calls to make and the dates of birth that did not match, at the user's sites
    (None for roles that do not review sign-ups)."""
    if not staff.may(Permission.review_applicants):
        return None
    codes = {
        p.id: p.code
        for p in session.scalars(
            select(Participant).where(
                Participant.study_id == study.id, Participant.source == "join"
            )
        )
    }
    calls: list[dict[str, Any]] = []
    for a in session.scalars(
        select(Applicant)
        .where(Applicant.study_id == study.id, Applicant.needs_call, Applicant.state.in_(_LIVE))
        .order_by(Applicant.id)
        .limit(LIMIT)
    ):
        if reachable(staff, a.site_id):
            who = codes.get(a.participant_id or 0) or f"Sign-up {a.id}"
            calls.append({"kind": "applicant", "id": a.id, "who": who, "phone": a.phone})
    for p in session.scalars(
        select(Participant)
        .where(Participant.study_id == study.id, Participant.needs_call)
        .order_by(Participant.id)
        .limit(LIMIT)
    ):
        if reachable(staff, p.site_id):
            calls.append({"kind": "participant", "id": p.id, "who": p.code, "phone": None})
    mismatched = [
        p.code
        for p in session.scalars(
            select(Participant)
            .join(Applicant, Applicant.participant_id == Participant.id)
            .where(
                Participant.study_id == study.id,
                Participant.needs_verification,
                Applicant.date_of_birth_check == "mismatched",
            )
            .order_by(Participant.id)
            .limit(LIMIT)
        )
        if reachable(staff, p.site_id)
    ]
    return {"calls": calls, "mismatched": mismatched}


def birth_mismatched(session: Session, participant_id: int) -> bool:
    """Whether the date of birth given at the first survey differed from the sign-up's."""
    found = session.scalar(
        select(Applicant.id).where(
            Applicant.participant_id == participant_id,
            Applicant.date_of_birth_check == "mismatched",
        )
    )
    return found is not None


@router.post("/studies/{slug}/calls/{kind}/{row_id}/done")
def call_done(
    slug: SlugPath,
    kind: str,
    row_id: RowId,
    session: SessionDep,
    staff: Reviewer,
    form: CheckedForm,
) -> Response:
    """The call to go over the consent was made: the flag is cleared, audited."""
    study = acting(session, slug, staff)
    row: Applicant | Participant | None
    if kind == "applicant":
        row = session.get(Applicant, row_id, with_for_update=True)
    elif kind == "participant":
        row = session.get(Participant, row_id, with_for_update=True)
    else:
        row = None
    if row is None or row.study_id != study.id or not reachable(staff, row.site_id):
        raise NotFound(f"no call {kind} {row_id} at your sites")
    if row.needs_call:
        row.needs_call = False
        entity = row.code if isinstance(row, Participant) else f"applicant:{row.id}"
        audit.record(
            session,
            AuditAction.consent_call_done,
            actor=staff.user,
            entity_id=entity,
            study_id=study.id,
            changes={"needs_call": (True, False)},
        )
    return back(study, "/worklist", done="call")
