"""The date-of-birth re-check at a self-enrolled participant's first survey (SPEC 10,
issue 16 item 2): "To check it is you: your date of birth", compared with the date given
at sign-up (sealed on the applicant).

Asked once, when the study's `join.ask_date_of_birth` is on, the participant came
through the join link (`participants.source == "join"`) and their sign-up holds a date.
The outcome (`matched` or `mismatched`) is kept on the applicant; a mismatch raises the
participant's `needs_verification` (randomization waits for a coordinator's check) and
is audited. The person is never told: either way the survey comes next.

Surveys sit below participants and join in the package layers, so the few columns are
read and written here through table clauses of their own (as `language.py` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Integer, String, column, select, table, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.db.base import UTCDateTime
from app.db.sealed import SealedText
from app.i18n.catalogs import gettext as _
from app.studies.definition import StudyDefinition

PARTICIPANT = "participant"  # the audit trail's actor for what the link's holder does
FIELD_MAX = 8  # a day, month or year typed: anything longer is not one

_participants = table(
    "participants",
    column("id", Integer),
    column("code", String),
    column("source", String),
    column("needs_verification", Boolean),
)
_applicants = table(
    "applicants",
    column("id", Integer),
    column("participant_id", Integer),
    column("date_of_birth", SealedText("applicants.date_of_birth")),
    column("date_of_birth_check", String),
    column("date_of_birth_checked_at", UTCDateTime()),
)


class Outcome(StrEnum):
    matched = "matched"
    mismatched = "mismatched"


def pending(session: Session, *, participant_id: int, definition: StudyDefinition) -> bool:
    """Whether this participant's next survey page is the date-of-birth question."""
    if not definition.join.ask_date_of_birth:
        return False
    return _waiting(session, participant_id) is not None


def _waiting(session: Session, participant_id: int, *, for_update: bool = False) -> int | None:
    """The id of the participant's sign-up whose date of birth is not re-checked yet."""
    query = (
        select(_applicants.c.id)
        .select_from(
            _applicants.join(_participants, _participants.c.id == _applicants.c.participant_id)
        )
        .where(
            _applicants.c.participant_id == participant_id,
            _participants.c.source == "join",
            _applicants.c.date_of_birth.is_not(None),
            _applicants.c.date_of_birth_check.is_(None),
        )
        .order_by(_applicants.c.id.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update(of=_applicants)
    return session.scalar(query)


def check(
    session: Session, *, participant_id: int, study_id: int, given: date, now: datetime
) -> Outcome | None:
    """Compare the date given with the one given at sign-up and keep the outcome (None:
    nothing to check, e.g. answered already in another tab)."""
    applicant_id = _waiting(session, participant_id, for_update=True)
    if applicant_id is None:
        return None
    stored = session.scalar(
        select(_applicants.c.date_of_birth).where(_applicants.c.id == applicant_id)
    )
    outcome = Outcome.matched if stored == given.isoformat() else Outcome.mismatched
    session.execute(
        update(_applicants)
        .where(_applicants.c.id == applicant_id)
        .values(date_of_birth_check=outcome.value, date_of_birth_checked_at=now)
    )
    changes: dict[str, tuple[object, object]] = {"date_of_birth_check": (None, outcome.value)}
    if outcome is Outcome.mismatched:
        session.execute(
            update(_participants)
            .where(_participants.c.id == participant_id)
            .values(needs_verification=True)
        )
        changes["needs_verification"] = (None, True)
    code = session.scalar(select(_participants.c.code).where(_participants.c.id == participant_id))
    audit.record(
        session,
        AuditAction.participant_date_of_birth_checked,
        actor=None,
        actor_label=PARTICIPANT,
        entity_id=str(code),
        study_id=study_id,
        changes=changes,
    )
    return outcome


@dataclass
class Given:
    """The date as typed (to show again) and what is wrong with it, in the page's words."""

    typed: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    born: date | None = None


def read(form: Mapping[str, Sequence[str]], *, today: date) -> Given:
    """Day, month and year (GOV.UK's date pattern), checked as the join pages check them."""
    given = Given()
    parts = {}
    for part in ("day", "month", "year"):
        raw = (form.get(f"dob-{part}") or [""])[0][:FIELD_MAX].strip()
        given.typed[f"dob-{part}"] = raw
        parts[part] = raw
    if not all(parts.values()):
        given.problem = _("Enter your date of birth")
        return given
    try:
        born = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except (ValueError, OverflowError):
        given.problem = _("Date of birth must be a real date")
        return given
    if not (today.year - 120 <= born.year and born <= today):
        given.problem = _("Date of birth must be in the past")
        return given
    given.born = born
    return given
