"""Corrections of a completed survey's answers (SPEC 8): a stored answer is never edited
in place. Each correction is a row of its own (`answer_corrections`: the original, the
new value, who, when and why, sealed at rest) and an audit record; the survey's answers
and scores become the corrected ones, and a safety rule the corrected answers now meet
raises its alert (one not raised for this survey before: a rule no longer met keeps its
alert, which is closed by acknowledging it)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.errors import FieldProblem, InvalidInput
from app.studies.definition import Item, StudyDefinition
from app.surveys import answers as entering
from app.surveys.models import Alert, AnswerCorrection, SurveyInstance
from app.surveys.scoring import answer_problem


def correct(
    session: Session,
    *,
    instance: SurveyInstance,
    definition: StudyDefinition,
    items: Mapping[str, Item],
    item: str,
    value: Any,
    reason: str,
    actor: Principal,
    now: datetime,
) -> list[Alert]:
    """Give one item of the completed survey a new answer (null: no answer, for an item
    that is not required), for a reason; the alerts this raised. `items` are the items
    the caller may correct (422 naming `item` for any other)."""
    problem = _problem(items, item, value)
    if problem is not None:
        raise InvalidInput([problem])
    new = None if _empty(value) else value
    old = instance.answers.get(item)
    if _same(old, new):
        raise InvalidInput([FieldProblem(("value",), "this is already the stored answer")])
    answers = dict(instance.answers)
    if new is None:
        answers.pop(item, None)
    else:
        answers[item] = new
    instruments = [definition.instrument(code) for code in instance.instruments]
    old_scores = instance.scores
    already = entering.raised_rules(session, instance_id=instance.id)
    instance.answers = answers
    instance.scores = entering.rescore(instruments, answers)
    session.add(
        AnswerCorrection(
            study_id=instance.study_id,
            instance_id=instance.id,
            item=item,
            old_value=old,
            new_value=new,
            reason=reason,
            corrected_by=actor.id,
            corrected_at=now,
        )
    )
    session.flush()
    audit.record(
        session,
        AuditAction.survey_answer_corrected,
        actor=actor,
        entity_id=f"{instance.participant_code}:{instance.timepoint}",
        study_id=instance.study_id,
        reason=reason,
        changes={item: (old, new), entering.SCORES_CHANGE: (old_scores, instance.scores)},
    )
    return entering.raise_alerts(
        session, instance=instance, rules=definition.alerts, now=now, already=already
    )


def corrections_for(
    session: Session, instance_ids: Collection[int]
) -> dict[int, list[AnswerCorrection]]:
    """The corrections of these surveys, each survey's in the order they were made (for
    the exports: the answers stored are the current ones)."""
    found: dict[int, list[AnswerCorrection]] = {}
    ids = sorted(set(instance_ids))
    for start in range(0, len(ids), 500):
        rows = session.scalars(
            select(AnswerCorrection)
            .where(AnswerCorrection.instance_id.in_(ids[start : start + 500]))
            .order_by(AnswerCorrection.id)
        )
        for row in rows:
            found.setdefault(row.instance_id, []).append(row)
    return found


def _problem(items: Mapping[str, Item], code: str, value: Any) -> FieldProblem | None:
    found = items.get(code)
    if found is None:
        return FieldProblem(("item",), "not a question of this survey")
    if _empty(value):
        if found.required:
            return FieldProblem(("value",), "this question needs an answer: give the right one")
        return None
    problem = answer_problem(found, value)
    return FieldProblem(("value",), problem) if problem else None


def _empty(value: Any) -> bool:
    return value in (None, "", [])


def _same(left: Any, right: Any) -> bool:
    """Whether two answers are the same JSON value (True is not 1)."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)
