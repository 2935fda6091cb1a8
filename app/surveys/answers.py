"""What saving and submitting answers does to a survey, whoever gives them: the
participant through the link, or a staff member in an interview (`mode: staff`).

Answers are checked against the items, merged over those kept before, scored on
submission, audited (each touched item's answer before and after, so that `verify` can
replay them), and every safety rule met raises an alert emailed to the site at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.errors import FieldProblem, InvalidAnswers
from app.incentives import earning
from app.outbox import service as outbox
from app.outbox.models import MessageKind
from app.studies.definition import AlertRule, Instrument, Item, StudyDefinition
from app.surveys.models import Alert, SurveyInstance
from app.surveys.scoring import MAX_ANSWERS, check, raised_alerts, scores

PARTICIPANT = "participant"  # who saves and submits through the link, in the audit trail
SCORES_CHANGE = "_scores"  # the scores, in the changes of `survey.submitted`
# How the survey was entered, in the changes of `survey.saved` and `survey.submitted`
# (no item code starts with "_"): `self` or `staff`, the interview's date and whether
# the assessor was blind.
MODE_CHANGE, INTERVIEWED_CHANGE, BLIND_CHANGE = "_mode", "_interviewed_on", "_assessor_blind"
SELF, STAFF = "self", "staff"


@dataclass(frozen=True)
class Entry:
    """Who gives the answers: the participant (no actor) or a staff member."""

    actor: Principal | None = None
    interviewed_on: date | None = None
    assessor_blind: bool | None = None

    @property
    def mode(self) -> str:
        return SELF if self.actor is None else STAFF


BY_PARTICIPANT = Entry()


def record_entry(instance: SurveyInstance, entry: Entry) -> dict[str, tuple[Any, Any]]:
    """Mark the survey as entered this way; the audit changes that say so (none for the
    participant's own saves of a survey nobody else touched)."""
    before = (instance.mode, instance.interviewed_on, instance.assessor_blind)
    if entry.actor is None:
        if instance.mode == SELF:
            return {}
        instance.mode, instance.entered_by = SELF, None
        instance.interviewed_on = instance.assessor_blind = None
    else:
        instance.mode, instance.entered_by = STAFF, entry.actor.id
        if entry.interviewed_on is not None:
            instance.interviewed_on = entry.interviewed_on
        if entry.assessor_blind is not None:
            instance.assessor_blind = entry.assessor_blind
    after = (instance.mode, instance.interviewed_on, instance.assessor_blind)
    names = (MODE_CHANGE, INTERVIEWED_CHANGE, BLIND_CHANGE)
    return {
        name: (_plain(old), _plain(new))
        for name, old, new in zip(names, before, after, strict=True)
        if old != new or name == MODE_CHANGE
    }


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def save(
    session: Session,
    *,
    instance: SurveyInstance,
    items: Iterable[Item],
    answers: Mapping[str, Any],
    clear: Collection[str] = (),
    entry: Entry,
    now: datetime,
) -> None:
    """Keep answers given so far (merged over those kept before, after forgetting those
    of the items in `clear`); each must be valid, none is required yet. Nothing is kept
    if any is wrong."""
    refuse(check(items, answers, complete=False), len(answers))
    before = dict(instance.answers)
    cleared = {code: instance.answers[code] for code in clear if code in instance.answers}
    kept = {code: value for code, value in instance.answers.items() if code not in cleared}
    instance.answers = {**kept, **without_empty(answers)}
    instance.saved_at = now
    how = record_entry(instance, entry)
    session.flush()
    audit.record(
        session,
        AuditAction.survey_saved,
        actor=entry.actor,
        actor_label=PARTICIPANT,  # named only without a staff actor
        entity_id=f"{instance.participant_code}:{instance.timepoint}",
        study_id=instance.study_id,
        changes={
            **{
                code: (before.get(code), instance.answers.get(code))
                for code in (*cleared, *answers)
            },
            **how,
        },
    )


def submit(
    session: Session,
    *,
    instance: SurveyInstance,
    instruments: list[Instrument],
    rules: Iterable[AlertRule],
    answers: Mapping[str, Any],
    entry: Entry,
    now: datetime,
    definition: StudyDefinition,
    checked: list[Instrument] | None = None,
) -> list[Alert]:
    """Complete the survey: the answers (merged over those saved) to the `checked`
    instruments (default: all) must be valid and every required item answered; the
    scores of all `instruments` are computed and kept, every safety rule met raises an
    alert, and the incentives the timepoint pays are earned. (A blind interviewer's
    `checked` leaves out the instruments only some arms answer: what the participant
    saved there is kept, neither checked nor required.)"""
    merged = {**instance.answers, **without_empty(answers)}
    asked = instruments if checked is None else checked
    items = [item for instrument in asked for item in instrument.items]
    codes = {item.code for item in items}
    seen = {code: value for code, value in instance.answers.items() if code in codes}
    refuse(check(items, {**seen, **without_empty(answers)}, complete=True), len(answers))
    computed = rescore(instruments, merged)
    instance.answers = merged
    instance.scores = computed
    instance.completed_at = now
    how = record_entry(instance, entry)
    session.flush()
    audit.record(
        session,
        AuditAction.survey_submitted,
        actor=entry.actor,
        actor_label=PARTICIPANT,  # named only without a staff actor
        entity_id=f"{instance.participant_code}:{instance.timepoint}",
        study_id=instance.study_id,
        changes={
            **{code: (None, value) for code, value in merged.items()},
            SCORES_CHANGE: (None, computed),
            **how,
        },
    )
    earning.earn(
        session,
        definition=definition,
        survey=earning.Completed(
            study_id=instance.study_id,
            site_id=instance.site_id,
            participant_id=instance.participant_id,
            participant_code=instance.participant_code,
            instance_id=instance.id,
            timepoint=instance.timepoint,
            opens_on=instance.opens_on,
            interviewed_on=instance.interviewed_on if entry.actor is not None else None,
        ),
        actor=entry.actor,
        now=now,
    )
    return raise_alerts(session, instance=instance, rules=rules, now=now)


def rescore(instruments: Iterable[Instrument], answers: Mapping[str, Any]) -> dict[str, Any]:
    """Every score of these instruments, from these answers."""
    computed: dict[str, float | None] = {}
    for instrument in instruments:
        computed |= scores(instrument, answers)
    return computed


def raise_alerts(
    session: Session,
    *,
    instance: SurveyInstance,
    rules: Iterable[AlertRule],
    now: datetime,
    already: Collection[str] = (),
) -> list[Alert]:
    """An alert for every rule the survey's answers and scores meet, but those in
    `already` (raised before for this survey)."""
    met = raised_alerts(rules, instance.answers, instance.scores or {})
    return [
        _raise_alert(session, instance=instance, rule=rule.code, text=rule.text, now=now)
        for rule in met
        if rule.code not in already
    ]


def raised_rules(session: Session, *, instance_id: int) -> set[str]:
    """The rules the survey has raised an alert for."""
    return set(session.scalars(select(Alert.rule).where(Alert.instance_id == instance_id)))


def _raise_alert(
    session: Session, *, instance: SurveyInstance, rule: str, text: str, now: datetime
) -> Alert:
    alert = Alert(
        study_id=instance.study_id,
        site_id=instance.site_id,
        instance_id=instance.id,
        participant_code=instance.participant_code,
        rule=rule,
        text=text,
        raised_at=now,
    )
    session.add(alert)
    session.flush()
    outbox.enqueue(
        session,
        kind=MessageKind.alert,
        dedupe_key=f"alert:{alert.id}",
        subject_id=alert.id,
        now=now,
        study_id=instance.study_id,
        site_id=instance.site_id,
        participant_code=instance.participant_code,
    )
    audit.record(
        session,
        AuditAction.alert_raised,
        actor=None,
        entity_id=alert.id,
        study_id=instance.study_id,
        changes={"participant": (None, instance.participant_code), "rule": (None, rule)},
    )
    return alert


def refuse(problems: list[FieldProblem], given: int) -> None:
    """InvalidAnswers (422) listing every problem, if any."""
    if given > MAX_ANSWERS:
        problems = [FieldProblem((), f"at most {MAX_ANSWERS} answers at once"), *problems]
    if problems:
        raise InvalidAnswers(problems)


def without_empty(answers: Mapping[str, Any]) -> dict[str, Any]:
    return {code: value for code, value in answers.items() if value not in (None, "", [])}
