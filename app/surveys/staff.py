"""Surveys as staff work with them: read with their answers, entered on a participant's
behalf in an interview (`mode: staff`), and corrected after submission.

The caller's blinding policy decides what exists for them: a timepoint only some arms
have is "no survey" (404) whether or not the participant has it, and the instruments
only some arms answer are left out of what they read, enter and correct, so that every
answer is the same for every arm (docs/blinding.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.models import User
from app.auth.principal import Principal
from app.db.base import utcnow
from app.errors import (
    FieldProblem,
    InvalidAnswers,
    InvalidInput,
    SurveyNotCompleted,
    SurveyNotEnterable,
    SurveyNotFound,
)
from app.randomization.blinding import Policy
from app.studies.definition import Instrument, Item, StudyDefinition
from app.studies.lifecycle import ensure_not_locked
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import answers as entering
from app.surveys import scheduling
from app.surveys.corrections import correct, corrections_for
from app.surveys.models import Alert, AnswerCorrection, SurveyInstance
from app.surveys.scheduling import SurveyStatus

__all__ = ["StaffSurvey", "correct_answer", "enter", "read", "submit"]

ENTERABLE = (SurveyStatus.open, SurveyStatus.missed)  # late data entry is allowed


@dataclass(frozen=True)
class StaffSurvey:
    """A participant's survey as one staff member may read it."""

    instance: SurveyInstance
    status: SurveyStatus
    instruments: list[Instrument]  # those the caller's policy shows
    corrections: list[AnswerCorrection]
    emails: Mapping[int, str]  # staff user id → email, for `entered_by` and corrections
    alerts: list[Alert] = field(default_factory=list)  # raised by this request

    @property
    def items(self) -> set[str]:
        return {item.code for instrument in self.instruments for item in instrument.items}

    @property
    def answers_shown(self) -> bool:
        """Answers are read once completed, or while staff are entering them (a draft
        the participant saved through the link stays theirs until they submit)."""
        return self.status is SurveyStatus.completed or (
            self.instance.mode == entering.STAFF and self.instance.completed_at is None
        )

    def answers(self) -> dict[str, Any] | None:
        if not self.answers_shown:
            return None
        return {code: v for code, v in self.instance.answers.items() if code in self.items}

    def scores(self) -> dict[str, Any] | None:
        if self.status is not SurveyStatus.completed:
            return None
        codes = {score.code for instrument in self.instruments for score in instrument.scores}
        return {code: v for code, v in (self.instance.scores or {}).items() if code in codes}

    def shown_corrections(self) -> list[AnswerCorrection]:
        return [c for c in self.corrections if c.item in self.items]

    @property
    def entered_by(self) -> str | None:
        by = self.instance.entered_by
        return self.emails.get(by) if by is not None else None


def read(
    session: Session, *, study: Study, participant_id: int, timepoint: str, policy: Policy
) -> StaffSurvey:
    """The participant's survey at the timepoint, with answers and scores once completed
    and every correction made to them."""
    instance = _instance(session, participant_id, timepoint, policy=policy)
    definition = definition_of(study)
    return _view(session, instance, definition, policy, now=utcnow())


def enter(
    session: Session,
    *,
    study: Study,
    participant_id: int,
    timepoint: str,
    policy: Policy,
    actor: Principal,
    answers: Mapping[str, Any],
    interviewed_on: date | None,
    assessor_blind: bool | None,
) -> StaffSurvey:
    """Keep answers a staff member entered so far (an answer of null takes back the one
    kept); each must be valid, none is required yet. The survey is marked as entered by
    staff; nothing is kept if anything is wrong."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    instance = _instance(session, participant_id, timepoint, policy=policy, for_update=True)
    definition = definition_of(study)
    view = _view(session, instance, definition, policy, now=now)
    _ensure_enterable(view)
    _check_interview(interviewed_on, instance, definition, now=now, required=False)
    given = {code: value for code, value in answers.items() if value not in (None, "", [])}
    clear = [code for code in answers if code not in given]
    with _under("answers"):
        entering.save(
            session,
            instance=instance,
            items=_items(view.instruments),
            answers=answers,
            clear=clear,
            entry=entering.Entry(actor, interviewed_on, assessor_blind),
            now=now,
        )
    return _view(session, instance, definition, policy, now=now)


def submit(
    session: Session,
    *,
    study: Study,
    participant_id: int,
    timepoint: str,
    policy: Policy,
    actor: Principal,
    answers: Mapping[str, Any],
    interviewed_on: date | None,
    assessor_blind: bool | None,
) -> StaffSurvey:
    """Complete the survey on the participant's behalf: the answers (over those saved)
    must be valid and complete, the interview dated; scored, audited with the mode, and
    every safety rule met raises an alert, as through the link. Whether the assessor was
    blind defaults to the caller's blinding in this study."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    instance = _instance(session, participant_id, timepoint, policy=policy, for_update=True)
    definition = definition_of(study)
    view = _view(session, instance, definition, policy, now=now)
    _ensure_enterable(view)
    drafted = instance.mode == entering.STAFF
    interviewed = interviewed_on or (instance.interviewed_on if drafted else None)
    _check_interview(interviewed, instance, definition, now=now, required=True)
    if assessor_blind is None and drafted:
        assessor_blind = instance.assessor_blind
    # Null takes back only what the caller is shown: a blind interviewer's null for an
    # item of an instrument only some arms answer leaves the participant's answer alone.
    shown = {item.code for item in _items(view.instruments)}
    cleared = {code for code, value in answers.items() if value in (None, "", []) and code in shown}
    if cleared & set(instance.answers):  # null takes a saved answer back, as in a save
        instance.answers = {c: v for c, v in instance.answers.items() if c not in cleared}
    with _under("answers"):
        alerts = entering.submit(
            session,
            instance=instance,
            instruments=[definition.instrument(code) for code in instance.instruments],
            checked=view.instruments,
            rules=definition.alerts,
            answers={k: v for k, v in answers.items() if k not in cleared},
            entry=entering.Entry(
                actor, interviewed, policy.blind if assessor_blind is None else assessor_blind
            ),
            now=now,
            definition=definition,
        )
    return replace(_view(session, instance, definition, policy, now=now), alerts=alerts)


def correct_answer(
    session: Session,
    *,
    study: Study,
    participant_id: int,
    timepoint: str,
    policy: Policy,
    actor: Principal,
    item: str,
    value: Any,
    reason: str,
) -> StaffSurvey:
    """Correct one answer of a completed survey (the original is kept); see
    `surveys.corrections.correct`."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    instance = _instance(session, participant_id, timepoint, policy=policy, for_update=True)
    definition = definition_of(study)
    view = _view(session, instance, definition, policy, now=now)
    if view.status is not SurveyStatus.completed:
        raise SurveyNotCompleted(
            f"the survey is {view.status}: answers are corrected once it is completed"
        )
    alerts = correct(
        session,
        instance=instance,
        definition=definition,
        items={i.code: i for i in _items(view.instruments)},
        item=item,
        value=value,
        reason=reason,
        actor=actor,
        now=now,
    )
    return replace(_view(session, instance, definition, policy, now=now), alerts=alerts)


def _instance(
    session: Session,
    participant_id: int,
    timepoint: str,
    *,
    policy: Policy,
    for_update: bool = False,
) -> SurveyInstance:
    """The survey, if it exists for the caller: a timepoint only some arms have is "no
    survey" for a blind caller whether or not the participant has it (same answer)."""
    instance = None
    if policy.shows_timepoint(timepoint):
        query = select(SurveyInstance).where(
            SurveyInstance.participant_id == participant_id,
            SurveyInstance.timepoint == timepoint,
        )
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        instance = session.scalars(query).first()
    if instance is None:
        raise SurveyNotFound(f"no survey {timepoint!r} for this participant")
    return instance


def _view(
    session: Session,
    instance: SurveyInstance,
    definition: StudyDefinition,
    policy: Policy,
    *,
    now: datetime,
) -> StaffSurvey:
    status = scheduling.status_of(instance, now=now, zone=definition.zone())
    instruments = [
        definition.instrument(code)
        for code in instance.instruments
        if policy.shows_instrument(code)
    ]
    corrections = corrections_for(session, [instance.id]).get(instance.id, [])
    people = {c.corrected_by for c in corrections} | {instance.entered_by}
    found = session.execute(select(User.id, User.email).where(User.id.in_(people - {None})))
    emails = {user_id: email for user_id, email in found}
    return StaffSurvey(instance, status, instruments, corrections, emails)


def _ensure_enterable(view: StaffSurvey) -> None:
    if view.status in ENTERABLE:
        return
    match view.status:
        case SurveyStatus.completed:
            raise SurveyNotEnterable("the survey is completed: correct its answers instead")
        case SurveyStatus.scheduled:
            raise SurveyNotEnterable(
                f"the survey opens on {view.instance.opens_on.isoformat()}: enter it then"
            )
    raise SurveyNotEnterable(f"the survey is {view.status}: it cannot be entered")


def _check_interview(
    day: date | None,
    instance: SurveyInstance,
    definition: StudyDefinition,
    *,
    now: datetime,
    required: bool,
) -> None:
    """The interview's date: needed to submit; between the survey's opening and today
    (in the study's time zone). After the window closed is allowed: late data."""
    problem = None
    if day is None:
        problem = "give the interview's date to submit" if required else None
    elif day > scheduling.local_date(now, definition.zone()):
        problem = "the interview's date cannot be in the future"
    elif day < instance.opens_on:
        opened = instance.opens_on.isoformat()
        problem = f"the survey opened on {opened}: date the interview then or later"
    if problem:
        raise InvalidInput([FieldProblem(("interviewed_on",), problem)])


def _items(instruments: Sequence[Instrument]) -> list[Item]:
    return [item for instrument in instruments for item in instrument.items]


@contextmanager
def _under(name: str) -> Iterator[None]:
    """Answer problems located under `name` of the body (`answers.phq9_9`)."""
    try:
        yield
    except InvalidAnswers as refused:
        located = [FieldProblem((name, *p.loc), p.msg) for p in refused.problems]
        raise InvalidAnswers(located) from None
