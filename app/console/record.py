"""The building blocks of a participant's record page, like a REDCap record home page:
safety alerts with the answer and score that raised them, the timepoints x instruments
grid, the answers and scores of each completed survey (with how they were entered and
every correction), and the history in words.

Everything a role reads here comes through the services that ask its blinding policy
(`survey_entry.read_survey` leaves out what a blind role may not see) and the policy
itself (`shows_history`): a blind role's record is the same whatever the participant's
arm. Safety alerts are all shown, as on the worklist and the dashboard (docs/blinding.md,
known limits: keep alert rules on instruments every arm answers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.console.shared import open_for
from app.participants import survey_entry
from app.participants.leaving import KIND_LABELS, LeavingKind
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.participants.schemas import ParticipantDetail
from app.randomization.blinding import Policy
from app.studies.definition import Instrument, Item, ItemType, StudyDefinition, words_of
from app.studies.models import Study
from app.surveys.models import Alert
from app.surveys.scheduling import SurveyStatus
from app.surveys.service import timepoint_name
from app.surveys.staff import StaffSurvey
from app.web.pages import shortdate

STATUS_WORDS: dict[str, str] = {
    ParticipantStatus.ineligible: "Not eligible",
    ParticipantStatus.enrolled: "Enrolled",
    ParticipantStatus.randomized: "Randomized",
    ParticipantStatus.withdrawn: "Withdrawn",
}
WITHDRAWN_WORDS: dict[str, str] = {
    LeavingKind.lost: "Lost to follow-up",
    LeavingKind.follow_up: "Withdrawn from follow-up",
    LeavingKind.data: "Withdrew consent to the use of their data",
    LeavingKind.died: "Died",
}


def status_words(participant: Participant) -> str:
    """A participant's status in words: "Randomized", "Withdrawn from follow-up"..."""
    kind = participant.withdrawal_kind
    if participant.status == ParticipantStatus.withdrawn and kind in WITHDRAWN_WORDS:
        return WITHDRAWN_WORDS[kind]
    if participant.status == ParticipantStatus.randomized and kind == LeavingKind.intervention:
        return "Randomized, stopped the intervention"
    return STATUS_WORDS.get(participant.status, words_of(participant.status))


def leaving_words(kind: str | None) -> str | None:
    """How a participant left, in words (the kinds' labels of `participants.leaving`)."""
    if kind is None:
        return None
    return KIND_LABELS.get(LeavingKind(kind), words_of(kind)) if kind in set(LeavingKind) else kind


def local(moment: datetime, zone: ZoneInfo) -> str:
    """A moment as people write it in a table, in the study's zone: `7 Dec 2026 14:05`."""
    shown = moment.astimezone(zone)
    return f"{shortdate(shown.date())} {shown:%H:%M}"


def survey_words(survey: StaffSurvey, zone: ZoneInfo) -> str:
    """A survey's status in words: "Completed 7 Dec 2026", "Open until 21 Dec 2026"."""
    instance = survey.instance
    match survey.status:
        case SurveyStatus.completed if instance.completed_at is not None:
            return f"Completed {shortdate(instance.completed_at.astimezone(zone).date())}"
        case SurveyStatus.open:
            return f"Open until {shortdate(instance.closes_on)}"
        case SurveyStatus.scheduled:
            return f"Not yet open (opens {shortdate(instance.opens_on)})"
        case SurveyStatus.missed:
            return "Missed"
        case SurveyStatus.cancelled:
            return "Cancelled"
    return words_of(str(survey.status))


def answer_words(item: Item | None, value: Any) -> str:
    """An answer as the participant chose it: the option's label, not its code."""
    if value is None or value == "" or value == []:
        return "No answer"
    if item is None:
        return str(value)
    if item.type is ItemType.boolean:
        return "Yes" if value is True else "No" if value is False else str(value)
    labels = {str(o.value): o.label for o in item.options or []}
    if isinstance(value, list):
        return "; ".join(labels.get(str(v), str(v)) for v in value)
    return labels.get(str(value), str(value))


def score_words(value: Any) -> str:
    """A score as people write it: `10`, `2.5` (not `10.0`), or a dash when not scored."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.2f}".rstrip("0")
    return str(value)


def read_surveys(
    session: Session, *, study: Study, detail: ParticipantDetail, user: Principal
) -> list[StaffSurvey]:
    """The participant's surveys the user may see, each with its answers once completed
    (as the API's staff read gives them: a blind role is not given what differs by arm)."""
    code = detail.participant.code
    return [
        survey_entry.read_survey(
            session, study=study, code=code, timepoint=line.timepoint, user=user
        )
        for line in detail.surveys
    ]


def entry_links(surveys: Sequence[StaffSurvey]) -> list[dict[str, str]]:
    """The surveys staff may enter on the participant's behalf (open or missed, not yet
    completed: "Enter answers") or correct (completed: "Correct an answer")."""
    out = []
    for survey in surveys:
        timepoint = survey.instance.timepoint
        if survey.status is SurveyStatus.completed:
            action = "correct"
        elif survey.status in (SurveyStatus.open, SurveyStatus.missed):
            action = "enter"
        else:
            continue
        out.append({"timepoint": timepoint, "name": timepoint_name(timepoint), "action": action})
    return out


@dataclass(frozen=True)
class Cell:
    words: str
    status: str  # a survey status, or "none" (not asked), "not_in_arm", "not_scheduled"
    link: str | None = None  # the survey's answers on this page


def grid(
    definition: StudyDefinition,
    policy: Policy,
    surveys: Sequence[StaffSurvey],
    *,
    arm: str | None,
    randomized: bool,
) -> dict[str, Any]:
    """The timepoints x instruments grid: each cell the survey's status in words. An
    instrument only some arms answer is a column only for roles that see arms (for them a
    cell may say "Not in this arm"); a timepoint only some arms have is a row only for
    them too (the policy)."""
    zone = definition.zone()
    by_timepoint = {s.instance.timepoint: s for s in surveys}
    timepoints = [t for t in definition.schedule if policy.shows_timepoint(t.code)]
    asked = {code for t in timepoints for code in t.instruments}
    instruments = [
        i for i in definition.instruments if i.code in asked and policy.shows_instrument(i.code)
    ]
    rows = []
    for timepoint in timepoints:
        survey = by_timepoint.get(timepoint.code)
        cells = []
        for instrument in instruments:
            if instrument.code not in timepoint.instruments:
                cells.append(Cell("Not asked", "none"))
            elif survey is None or instrument.code not in survey.instance.instruments:
                cells.append(_absent(instrument, arm=arm, randomized=randomized))
            else:
                completed = survey.status is SurveyStatus.completed
                link = f"#answers-{timepoint.code}" if completed else None
                cells.append(Cell(survey_words(survey, zone), str(survey.status), link))
        rows.append({"timepoint": timepoint.code, "name": timepoint_name(timepoint.code),
                     "cells": cells})  # fmt: skip
    return {"instruments": [i.title for i in instruments], "rows": rows}


def _absent(instrument: Instrument, *, arm: str | None, randomized: bool) -> Cell:
    if arm is not None and instrument.arms is not None and arm not in instrument.arms:
        return Cell("Not in this arm", "not_in_arm")
    return Cell("After randomization" if not randomized else "Not scheduled", "not_scheduled")


def answers(definition: StudyDefinition, surveys: Sequence[StaffSurvey]) -> list[dict[str, Any]]:
    """Each completed survey's answers (items with the answer's label), scores, how it
    was entered and every correction, as far as the reader may see them."""
    zone = definition.zone()
    out = []
    for survey in surveys:
        given = survey.answers()
        if survey.status is not SurveyStatus.completed or given is None:
            continue
        scores = survey.scores() or {}
        items = {item.code: item for i in survey.instruments for item in i.items}
        instance = survey.instance
        out.append(
            {
                "timepoint": instance.timepoint,
                "name": timepoint_name(instance.timepoint),
                "words": survey_words(survey, zone),
                "staff": instance.mode == "staff",
                "entered_by": survey.entered_by,
                "interviewed_on": instance.interviewed_on,
                "assessor_blind": instance.assessor_blind,
                "instruments": [
                    {
                        "title": i.title,
                        "questions": [
                            (it.text, answer_words(it, given.get(it.code))) for it in i.items
                        ],
                        "scores": [(s.code, score_words(scores.get(s.code))) for s in i.scores],
                    }
                    for i in survey.instruments
                ],
                "corrections": [
                    {
                        "item": items[c.item].text if c.item in items else c.item,
                        "old": answer_words(items.get(c.item), c.old_value),
                        "new": answer_words(items.get(c.item), c.new_value),
                        "by": survey.emails.get(c.corrected_by, "—"),
                        "at": local(c.corrected_at, zone),
                        "reason": c.reason,
                    }
                    for c in survey.shown_corrections()
                ],
            }
        )
    return out


def alerts(
    definition: StudyDefinition,
    policy: Policy,
    found: Sequence[Alert],
    surveys: Sequence[StaffSurvey],
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    """The participant's safety alerts the reader may see, oldest first: the rule, the
    question and the answer that met it (in words) and its instrument's scores, when
    raised and how long open (or the note it was acknowledged with)."""
    zone = definition.zone()
    rules = {r.code: r for r in definition.alerts}
    by_instance = {s.instance.id: s for s in surveys}
    out = []
    for alert in sorted(found, key=lambda a: (a.raised_at, a.id)):
        rule = rules.get(alert.rule)
        survey = by_instance.get(alert.instance_id)
        view: dict[str, Any] = {
            "id": alert.id,
            "text": alert.text,
            "survey": timepoint_name(survey.instance.timepoint) if survey else None,
            "raised": local(alert.raised_at, zone),
            "open_for": None if alert.acknowledged_at else open_for(alert.raised_at, now),
            "acknowledged": local(alert.acknowledged_at, zone) if alert.acknowledged_at else None,
            "note": alert.note,
            "question": None,
            "answer": None,
            "scores": [],
        }
        if rule is not None and survey is not None:
            view |= _trigger(survey, rule.item, rule.score)
        out.append(view)
    return out


def _trigger(survey: StaffSurvey, item_code: str | None, score_code: str | None) -> dict[str, Any]:
    """The question and answer an alert's rule read (the current answer: a correction
    since is listed with the survey), and the scores of its instrument."""
    given = survey.answers() or {}
    scores = survey.scores() or {}
    for instrument in survey.instruments:
        item = next((i for i in instrument.items if i.code == item_code), None)
        has_score = any(s.code == score_code for s in instrument.scores)
        if item is None and not has_score:
            continue
        return {
            "question": item.text if item else None,
            "answer": answer_words(item, given.get(item.code)) if item else None,
            "corrected": item is not None
            and any(c.item == item.code for c in survey.shown_corrections()),
            "scores": [
                (f"{instrument.title}: {s.code}", score_words(scores.get(s.code)))
                for s in instrument.scores
            ],
        }
    return {}


ACTION_WORDS = {
    "participant.screened": "Screened",
    "participant.enrolled": "Enrolled",
    "participant.randomized": "Randomized",
    "participant.withdrawn": "Withdrawn",
    "participant.unblinded": "Arm revealed (unblinded)",
    "survey.saved": "Survey answers saved",
    "survey.submitted": "Survey submitted",
    "survey.answer_corrected": "Survey answer corrected",
    "survey.link_reissued": "Survey link reissued",
    "survey.invitation_resent": "Survey invitation emailed again",
    "alert.raised": "Safety alert raised",
    "alert.acknowledged": "Safety alert acknowledged",
    "contact.logged": "Contact attempt logged",
    "participant.contact_corrected": "Contact details corrected",
    "alternate_contact.added": "Alternate contact added",
    "alternate_contact.removed": "Alternate contact removed",
    "survey.missed_reason": "Reason the survey was missed recorded",
}
ALERT_ACTIONS = (AuditAction.alert_raised.value, AuditAction.alert_acknowledged.value)


def action_words(action: str) -> str:
    """An audit action in words: its own, else made from its code."""
    return ACTION_WORDS.get(action) or action.replace(".", " ").replace("_", " ").capitalize()


def history(
    session: Session,
    *,
    study: Study,
    definition: StudyDefinition,
    participant: Participant,
    policy: Policy,
    shown_alerts: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """What happened to the participant, oldest first, in words: their records, and those
    of the safety alerts shown with the record (raised, acknowledged), each as the
    policy allows (`shows_history`, `shows_reason`)."""
    records = list(
        audit.list_records(
            session, study_id=study.id, after_seq=0, limit=500, entity=participant.code
        )
    )
    texts = {str(a["id"]): a["text"] for a in shown_alerts}
    for alert_id in texts:
        found = audit.list_records(
            session, study_id=study.id, after_seq=0, limit=10, entity=alert_id
        )
        records += [r for r in found if r.action in ALERT_ACTIONS]
    items = {item.code: item for i in definition.instruments for item in i.items}
    out = []
    for r in sorted(records, key=lambda r: r.seq):
        alerting = r.action in ALERT_ACTIONS
        if not alerting and not policy.shows_history(r.action, r.entity_id, r.changes):
            continue
        out.append(
            {
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "words": action_words(r.action),
                "about": texts.get(r.entity_id) if alerting else _about(r, items),
                "reason": r.reason if policy.shows_reason(r.action) else None,
            }
        )
    return out


def _about(record: Any, items: Mapping[str, Item]) -> str | None:
    """What a participant's record is about: its survey, and for a correction the
    question with its answer before and after."""
    _, _, timepoint = record.entity_id.partition(":")
    if not timepoint:
        return None
    about = timepoint_name(timepoint)
    if record.action == AuditAction.survey_answer_corrected.value:
        for code, change in record.changes.items():
            if code in items and isinstance(change, Mapping):
                item = items[code]
                old = answer_words(item, change.get("old"))
                new = answer_words(item, change.get("new"))
                about += f": “{item.text}” from {old} to {new}"
    return about
