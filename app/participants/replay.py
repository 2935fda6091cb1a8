"""Replaying the audit trail against the research data as stored (`trialdesk verify`).

The trail says what each participant's screening, status, strata, contact and
allocation are, what each survey's answers and scores are, and which alerts were
raised and acknowledged (with which note). Every stored row that differs, and every
row the trail does not know of (or knows, but the database lost), is reported with its
table and key. Read through the ORM models, so sealed columns compare as plain values.

Memory stays bounded: participants are taken 500 at a time, with their rows and the
audit records about them; the existence checks stream the trail in pages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.actions import AuditAction
from app.audit.chain import canonical
from app.audit.models import AuditRecord
from app.participants import lifecycle
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.randomization.models import Allocation
from app.studies import service as studies
from app.studies.models import Study
from app.surveys.answers import BLIND_CHANGE, INTERVIEWED_CHANGE, MODE_CHANGE, SCORES_CHANGE
from app.surveys.models import Alert, SurveyInstance
from app.surveys.scheduling import local_date

CHUNK = 500


@dataclass(frozen=True)
class Difference:
    """A stored row that is not what the trail says."""

    table: str
    key: str
    problem: str


@dataclass
class _Person:
    screened: bool = False
    site: Any = None
    screening: Any = None
    ineligible_reasons: Any = None
    status: str | None = None
    withdrawn_from: str | None = None
    consent_version: Any = None
    strata: Any = None
    contact: Any = "unknown"  # before contacts were recorded in the trail
    randomized: dict[str, Any] | None = None
    withdrawal_reason: str | None = None
    withdrawal: tuple[Any, Any, Any] | None = None  # kind, date (ISO), category
    intervention_stopped_on: str | None = None  # ISO


@dataclass
class _Survey:
    touched: bool = False
    answers: dict[str, Any] = field(default_factory=dict)
    scores: Any = "unknown"
    submitted: bool = False
    # How it was entered (`_mode`... in the changes): self, or staff with the interview.
    entry: dict[str, Any] = field(
        default_factory=lambda: {MODE_CHANGE: "self", INTERVIEWED_CHANGE: None, BLIND_CHANGE: None}
    )


@dataclass
class _Alert:
    participant: Any = None
    rule: Any = None
    acknowledged: bool = False
    note: str | None = None


def _new(changes: dict[str, Any], name: str, default: Any = None) -> Any:
    change = changes.get(name)
    return change.get("new", default) if isinstance(change, dict) else default


def replay(session: Session, *, study: Study) -> Iterator[Difference]:
    """Every difference between the study's research data and its audit trail."""
    definition = studies.definition_of(study)
    plan = definition.plan()
    timepoints = [t.code for t in definition.schedule]
    last_id = 0
    while True:
        people = session.scalars(
            select(Participant)
            .where(Participant.study_id == study.id, Participant.id > last_id)
            .order_by(Participant.id)
            .limit(CHUNK)
        ).all()
        if not people:
            break
        last_id = people[-1].id
        yield from _chunk(session, study=study, people=people, plan=plan, timepoints=timepoints)
    yield from _lost(session, study=study)


def _chunk(
    session: Session,
    *,
    study: Study,
    people: Sequence[Participant],
    plan: Any,
    timepoints: list[str],
) -> Iterator[Difference]:
    ids = [p.id for p in people]
    codes = [p.code for p in people]
    contacts = {
        c.participant_id: c
        for c in session.scalars(select(Contact).where(Contact.participant_id.in_(ids)))
    }
    allocations = {
        a.participant_id: a
        for a in session.scalars(select(Allocation).where(Allocation.participant_id.in_(ids)))
    }
    instances = {
        f"{i.participant_code}:{i.timepoint}": i
        for i in session.scalars(
            select(SurveyInstance).where(SurveyInstance.participant_id.in_(ids))
        )
    }
    alerts = {
        str(a.id): a
        for a in session.scalars(
            select(Alert).where(Alert.study_id == study.id, Alert.participant_code.in_(codes))
        )
    }
    entities = {*codes, *instances, *alerts, *(f"{c}:{t}" for c in codes for t in timepoints)}
    expected_people = {code: _Person() for code in codes}
    expected_surveys: dict[str, _Survey] = {}
    expected_alerts: dict[str, _Alert] = {}
    records = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.study_id == study.id, AuditRecord.entity_id.in_(entities))
        .order_by(AuditRecord.seq)
    )
    for rec in records:
        if rec.entity_type == "participant" and rec.entity_id in expected_people:
            _apply_participant(expected_people[rec.entity_id], rec)
        elif rec.entity_type == "survey":
            _apply_survey(expected_surveys.setdefault(rec.entity_id, _Survey()), rec)
        elif rec.entity_type == "alert":
            _apply_alert(expected_alerts.setdefault(rec.entity_id, _Alert()), rec)
    for person in people:
        yield from _compare_person(
            person,
            expected_people[person.code],
            contacts.get(person.id),
            allocations.get(person.id),
            plan,
            studies.definition_of(study).zone(),
        )
    for key, instance in instances.items():
        yield from _compare_survey(key, instance, expected_surveys.pop(key, _Survey()))
    for key, survey in expected_surveys.items():
        if survey.touched:
            yield Difference("survey_instances", key, "in the trail, missing from the database")
    for key, alert in alerts.items():
        yield from _compare_alert(key, alert, expected_alerts.pop(key, None))
    for key in expected_alerts:
        yield Difference("survey_alerts", key, "raised in the trail, missing from the database")


def _apply_participant(person: _Person, rec: AuditRecord) -> None:
    changes = rec.changes
    match rec.action:
        case AuditAction.participant_screened.value:
            person.screened = True
            person.site = _new(changes, "site")
            person.screening = _new(changes, "screening")
            person.ineligible_reasons = _new(changes, "ineligible_reasons")
            eligible = bool(_new(changes, "eligible"))
            person.status = lifecycle.screened(eligible=eligible).value
        case AuditAction.participant_enrolled.value:
            person.status = _new(changes, "status", person.status)
            person.consent_version = _new(changes, "consent_version")
            person.strata = _new(changes, "strata")
            contact = _new(changes, "contact")
            person.contact = "unknown" if contact == "recorded" else contact
        case AuditAction.participant_contact_corrected.value:
            person.contact = "unknown"  # the trail says which fields changed, not to what
        case AuditAction.participant_randomized.value:
            person.status = _new(changes, "status", person.status)
            person.randomized = {
                name: _new(changes, name) for name in ("stratum", "sequence", "block", "position")
            }
        case AuditAction.participant_withdrawn.value:
            status = _new(changes, "status", person.status)
            if status != person.status:  # stopping the intervention keeps the status
                person.withdrawn_from = person.status
            person.status = status
            person.withdrawal_reason = rec.reason
            if "withdrawal_kind" in changes:  # recorded since leaving has kinds
                person.withdrawal = (
                    _new(changes, "withdrawal_kind"),
                    _new(changes, "withdrawn_on"),
                    _new(changes, "withdrawal_category"),
                )
                if "intervention_stopped_on" in changes:
                    person.intervention_stopped_on = _new(changes, "intervention_stopped_on")
                else:  # before the column: what the 2026-12-07_1003 revision made of it
                    kind, on, _ = person.withdrawal
                    person.intervention_stopped_on = on if kind == "intervention" else None
            else:  # before kinds: what the 2026-12-07_1000 revision made of it
                person.withdrawal = ("follow_up", rec.at, "other")


def _apply_survey(survey: _Survey, rec: AuditRecord) -> None:
    changes = rec.changes
    answers = {code: c for code, c in changes.items() if not code.startswith("_")}
    for name in survey.entry:
        if isinstance(changes.get(name), dict):
            survey.entry[name] = changes[name].get("new")
    if rec.action in (AuditAction.survey_saved.value, AuditAction.survey_answer_corrected.value):
        survey.touched = True
        for code, change in answers.items():
            new = change.get("new") if isinstance(change, dict) else None
            if new in (None, "", []):
                survey.answers.pop(code, None)
            else:
                survey.answers[code] = new
        scores = changes.get(SCORES_CHANGE)
        if isinstance(scores, dict):  # a correction: the scores computed again
            survey.scores = scores.get("new")
    elif rec.action == AuditAction.survey_submitted.value:
        survey.touched = survey.submitted = True
        survey.answers = {
            code: change.get("new") for code, change in answers.items() if isinstance(change, dict)
        }
        scores = changes.get(SCORES_CHANGE)
        survey.scores = scores.get("new") if isinstance(scores, dict) else "unknown"


def _apply_alert(alert: _Alert, rec: AuditRecord) -> None:
    if rec.action == AuditAction.alert_raised.value:
        alert.participant = _new(rec.changes, "participant")
        alert.rule = _new(rec.changes, "rule")
    elif rec.action == AuditAction.alert_acknowledged.value:
        alert.acknowledged = True
        alert.note = rec.reason


def _differs(stored: Any, expected: Any) -> bool:
    return bool(canonical(stored) != expected)


def _compare_person(
    person: Participant,
    expected: _Person,
    contact: Contact | None,
    allocation: Allocation | None,
    plan: Any,
    zone: ZoneInfo,
) -> Iterator[Difference]:
    code = person.code

    def differ(table: str, what: str) -> Difference:
        return Difference(table, code, f"{what} differs from the trail")

    if not expected.screened:
        yield Difference("participants", code, "not in the trail")
        return
    if person.site.code != expected.site:
        yield differ("participants", "site")
    if _differs(person.screening, expected.screening):
        yield differ("participants", "screening")
    if _differs(person.ineligible_reasons, expected.ineligible_reasons):
        yield differ("participants", "ineligible_reasons")
    if person.status != expected.status:
        yield differ("participants", "status")
    if expected.status == ParticipantStatus.withdrawn and (
        person.withdrawn_from != expected.withdrawn_from
        or person.withdrawal_reason != expected.withdrawal_reason
    ):
        yield differ("participants", "withdrawal")
    stored_leaving = (
        person.withdrawal_kind,
        person.withdrawn_on.isoformat() if person.withdrawn_on else None,
        person.withdrawal_category,
        person.intervention_stopped_on.isoformat() if person.intervention_stopped_on else None,
    )
    kind, on, category = expected.withdrawal or (None, None, None)
    if isinstance(on, datetime):  # a withdrawal recorded before kinds: its day there
        on = local_date(on, zone).isoformat()
    if stored_leaving != (kind, on, category, expected.intervention_stopped_on) or (
        expected.withdrawal is not None and person.withdrawal_reason != expected.withdrawal_reason
    ):
        yield differ("participants", "withdrawal kind")
    eligible = expected.status != ParticipantStatus.ineligible
    if eligible and person.consent_version != expected.consent_version:
        yield differ("participants", "consent_version")
    if eligible and _differs(person.strata, expected.strata):
        yield differ("participants", "strata")
    stratum = (
        plan.stratum_of(site=expected.site, levels=expected.strata or {}) if eligible else None
    )
    if person.stratum != stratum:
        yield differ("participants", "stratum")
    if expected.contact != "unknown":
        stored = (
            None
            if contact is None
            else {"name": contact.name, "email": contact.email, "phone": contact.phone}
        )
        if stored != expected.contact:
            yield differ("contacts", "contact")
    randomized = expected.randomized
    if randomized is None:
        if allocation is not None:
            yield Difference("allocations", code, "an allocation the trail does not know of")
        return
    if allocation is None:
        yield Difference("allocations", code, "randomized in the trail, no allocation stored")
        return
    if (
        allocation.stratum.key != randomized["stratum"]
        or person.stratum != randomized["stratum"]
        or [allocation.sequence, allocation.block, allocation.position]
        != [randomized["sequence"], randomized["block"], randomized["position"]]
    ):
        yield differ("allocations", "the slot (stratum, sequence, block, position)")


def _compare_survey(key: str, instance: SurveyInstance, expected: _Survey) -> Iterator[Difference]:
    if _differs(instance.answers, expected.answers):
        yield Difference("survey_instances", key, "answers differ from the trail")
    if (instance.completed_at is not None) != expected.submitted:
        yield Difference("survey_instances", key, "completion differs from the trail")
    interviewed = instance.interviewed_on.isoformat() if instance.interviewed_on else None
    if [instance.mode, interviewed, instance.assessor_blind] != list(expected.entry.values()):
        yield Difference("survey_instances", key, "mode of entry differs from the trail")
    known = expected.scores != "unknown"
    if (known and _differs(instance.scores, expected.scores)) or (
        not expected.submitted and instance.scores is not None
    ):
        yield Difference("survey_instances", key, "scores differ from the trail")


def _compare_alert(key: str, alert: Alert, expected: _Alert | None) -> Iterator[Difference]:
    if expected is None or expected.rule is None:
        yield Difference("survey_alerts", key, "not in the trail")
        return
    if alert.rule != expected.rule or alert.participant_code != expected.participant:
        yield Difference("survey_alerts", key, "rule or participant differs from the trail")
    if (alert.acknowledged_at is not None) != expected.acknowledged:
        yield Difference("survey_alerts", key, "acknowledgement differs from the trail")
    elif expected.acknowledged and alert.note != expected.note:
        yield Difference("survey_alerts", key, "note differs from the trail")


def _lost(session: Session, *, study: Study) -> Iterator[Difference]:
    """Participants and alerts the trail created that the database no longer has."""
    checks: list[tuple[str, str, Any, Any]] = [
        ("participants", AuditAction.participant_screened.value, Participant.code, Participant),
        ("survey_alerts", AuditAction.alert_raised.value, Alert.id, Alert),
    ]
    for table, action, column, model in checks:
        last = 0
        while True:
            page = session.execute(
                select(AuditRecord.seq, AuditRecord.entity_id)
                .where(
                    AuditRecord.study_id == study.id,
                    AuditRecord.action == action,
                    AuditRecord.seq > last,
                )
                .order_by(AuditRecord.seq)
                .limit(CHUNK)
            ).all()
            if not page:
                break
            last = page[-1][0]
            keys = [entity for _, entity in page]
            wanted = keys if table == "participants" else [int(k) for k in keys if k.isdigit()]
            found = {
                str(value)
                for value in session.scalars(
                    select(column).where(model.study_id == study.id, column.in_(wanted))
                )
            }
            for key in keys:
                if key not in found:
                    yield Difference(table, key, "in the trail, missing from the database")
