"""Protocol deviations (SPEC 9, issue 15 item 5): recorded by staff, proposed by the
system for a coordinator to confirm or dismiss, followed up; never edited in place.

Every change is a version (`protocol_deviation_versions`), numbered from the record's
`versions` counter by one atomic `UPDATE ... SET versions = versions + 1 ... RETURNING`
whose WHERE also names the state the change needs: two coordinators deciding one
proposal at once get one decision and one 409; two follow-ups at once both get kept,
one after the other. What a version says is sealed; the record's state stays plain for
lists and filters, and moves in the same UPDATE.

Proposals: a survey done after its window closed (`find_late_surveys`). Only staff can
complete a survey after its window (the participant's link answers 410 once it
closed), so only staff-entered surveys without a proposal yet are read; the day it was
done is the interview's date. A survey whose interview falls within the window but was
typed in later is late data entry, not a deviation. See docs/safety.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, cast, func, literal, select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.service import Change
from app.auth.models import User
from app.auth.permissions import Permission, has_permission, reachable_sites
from app.auth.principal import Principal, Role
from app.errors import DeviationNotFound, DeviationStateConflict, FieldProblem, InvalidInput
from app.participants.lookup import get_participant
from app.participants.models import Participant
from app.randomization.blinding import policy_for
from app.safety.deviation_rules import (
    DeviationCategory,
    DeviationState,
    DeviationVersion,
    DeviationVersionKind,
    fold_deviation,
)
from app.safety.deviation_schemas import (
    DeviationCreate,
    DeviationRead,
    DeviationSummary,
    DeviationVersionCreate,
    DeviationVersionRead,
    VersionKindIn,
)
from app.safety.models import ProtocolDeviation, ProtocolDeviationVersion
from app.studies.definition import StudyDefinition
from app.studies.lifecycle import StudyStatus, ensure_not_locked
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys.answers import STAFF
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date
from app.surveys.service import timepoint_name

OUTSIDE_WINDOW_SOURCE = "outside_window:survey:"
SYSTEM = "system"

# What each version kind needs the deviation to be, and what it makes it.
_TRANSITIONS: dict[VersionKindIn, tuple[DeviationState, DeviationState]] = {
    VersionKindIn.follow_up: (DeviationState.confirmed, DeviationState.confirmed),
    VersionKindIn.confirmation: (DeviationState.proposed, DeviationState.confirmed),
    VersionKindIn.dismissal: (DeviationState.proposed, DeviationState.dismissed),
}


def number_words(number: int) -> str:
    return f"PD-{number}"


# --- recording ------------------------------------------------------------------------
def record_deviation(
    session: Session, *, study: Study, code: str, data: DeviationCreate, actor: Principal
) -> DeviationRead:
    """Record a deviation of the participant (confirmed at once: staff found it)."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    participant = get_participant(session, study=study, code=code, user=actor)
    _check_occurred_on(study, participant, data.occurred_on, now=now)
    fields: dict[str, Any] = {
        "category": data.category.value,
        "occurred_on": data.occurred_on.isoformat(),
        "description": data.description,
        "important": data.important,
        "corrective_action": data.corrective_action,
    }
    deviation = _add(
        session,
        study=study,
        participant=participant,
        state=DeviationState.confirmed,
        kind=DeviationVersionKind.initial,
        fields=fields,
        source=None,
        actor=actor,
        now=now,
    )
    audit.record(
        session,
        AuditAction.deviation_recorded,
        actor=actor,
        entity_id=number_words(deviation.number),
        study_id=study.id,
        changes=_changes(participant.code, None, DeviationState.confirmed, fields),
    )
    return _read(session, study, deviation)


def add_version(
    session: Session,
    *,
    study: Study,
    deviation_id: int,
    data: DeviationVersionCreate,
    actor: Principal,
) -> DeviationRead:
    """Add the next version: a follow-up of a confirmed deviation, or the confirmation or
    dismissal of a proposal (409 otherwise; a dismissal needs a note and changes no field)."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    deviation = _find(session, study=study, deviation_id=deviation_id, user=actor)
    fields = data.changed_fields()
    problems = []
    if data.kind is VersionKindIn.dismissal:
        problems += [
            FieldProblem((name,), "a dismissal changes no field: give only a note")
            for name in fields
        ]
        if data.note is None:
            problems.append(FieldProblem(("note",), "say why this is no deviation"))
    elif data.kind is VersionKindIn.follow_up and not fields and data.note is None:
        problems.append(FieldProblem(("note",), "give what changed, or a note"))
    if problems:
        raise InvalidInput(problems)
    if data.occurred_on is not None:
        participant = session.get_one(Participant, deviation.participant_id)
        _check_occurred_on(study, participant, data.occurred_on, now=now)
    needed, becomes = _TRANSITIONS[data.kind]
    number = session.execute(
        update(ProtocolDeviation)
        .where(ProtocolDeviation.id == deviation.id, ProtocolDeviation.state == needed.value)
        .values(versions=ProtocolDeviation.versions + 1, state=becomes.value)
        .returning(ProtocolDeviation.versions)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if number is None:
        session.refresh(deviation)
        raise DeviationStateConflict(_refusal(deviation, data.kind))
    session.refresh(deviation)
    stored = fields | ({"note": data.note} if data.note is not None else {})
    session.add(
        ProtocolDeviationVersion(
            deviation_id=deviation.id,
            number=number,
            kind=DeviationVersionKind(data.kind.value).value,
            fields=stored,
            recorded_at=now,
            recorded_by=actor.id,
        )
    )
    session.flush()
    changes = _changes(None, needed, becomes, stored)
    changes["version"] = (number - 1, number)
    changes["kind"] = (None, data.kind.value)
    audit.record(
        session,
        AuditAction.deviation_versioned,
        actor=actor,
        entity_id=number_words(deviation.number),
        study_id=study.id,
        changes=changes,
    )
    return _read(session, study, deviation)


def _refusal(deviation: ProtocolDeviation, kind: VersionKindIn) -> str:
    name = number_words(deviation.number)
    if kind is VersionKindIn.follow_up:
        if deviation.state == DeviationState.proposed:
            return f"{name} is a proposal: confirm or dismiss it first"
        return f"{name} was dismissed: record a new deviation instead"
    return f"{name} is {deviation.state}, not a proposal: only a proposal is confirmed or dismissed"


def _check_occurred_on(study: Study, participant: Participant, on: date, *, now: datetime) -> None:
    """Not in the future, not before the participant was screened (the study's zone)."""
    zone = definition_of(study).zone()
    today = local_date(now, zone)
    screened = local_date(participant.screened_at, zone)
    problem = None
    if on > today:
        problem = f"{on.isoformat()} is in the future (today is {today.isoformat()})"
    elif on < screened:
        problem = f"{on.isoformat()} is before the participant was screened ({screened})"
    if problem:
        raise InvalidInput([FieldProblem(("occurred_on",), problem)])


def _add(
    session: Session,
    *,
    study: Study,
    participant: Participant,
    state: DeviationState,
    kind: DeviationVersionKind,
    fields: Mapping[str, Any],
    source: str | None,
    actor: Principal | None,
    now: datetime,
) -> ProtocolDeviation:
    """A new deviation with its first version. Its number is the study's next: callers
    hold the study's row (or SQLite's write lock), and (study, number) is unique."""
    last = session.scalar(
        select(func.max(ProtocolDeviation.number)).where(ProtocolDeviation.study_id == study.id)
    )
    deviation = ProtocolDeviation(
        study_id=study.id,
        site_id=participant.site_id,
        participant_id=participant.id,
        number=(last or 0) + 1,
        state=state.value,
        source=source,
        versions=1,
        created_at=now,
        created_by=actor.id if actor else None,
    )
    session.add(deviation)
    session.flush()
    session.add(
        ProtocolDeviationVersion(
            deviation_id=deviation.id,
            number=1,
            kind=kind.value,
            fields=dict(fields),
            recorded_at=now,
            recorded_by=actor.id if actor else None,
        )
    )
    session.flush()
    return deviation


def _changes(
    code: str | None,
    old: DeviationState | None,
    new: DeviationState,
    fields: Mapping[str, Any],
) -> dict[str, Change]:
    changes: dict[str, Change] = {"state": (old.value if old else None, new.value)}
    if code is not None:
        changes["participant"] = (None, code)
    changes.update({name: (None, value) for name, value in fields.items()})
    return changes


# --- reading --------------------------------------------------------------------------
def _find(
    session: Session, *, study: Study, deviation_id: int, user: Principal
) -> ProtocolDeviation:
    deviation = session.get(ProtocolDeviation, deviation_id)
    sites = reachable_sites(user)
    if (
        deviation is None
        or deviation.study_id != study.id
        or (sites is not None and deviation.site_id not in sites)
    ):
        raise DeviationNotFound(f"no deviation {deviation_id}")
    return deviation


def get_deviation(
    session: Session, *, study: Study, deviation_id: int, user: Principal
) -> DeviationRead:
    """One deviation with every version, if at a site the user reaches (else 404)."""
    return _read(session, study, _find(session, study=study, deviation_id=deviation_id, user=user))


def list_deviations(
    session: Session,
    *,
    study: Study,
    user: Principal,
    state: DeviationState | None = None,
    participant: str | None = None,
    after_id: int = 0,
    limit: int = 100,
    newest_first: bool = False,
    decided_only: bool = False,
) -> list[DeviationSummary]:
    """Deviations at the user's sites (of a state, or `decided_only`: not proposals), by
    id: oldest first, or newest first (then `after_id` is the last id seen, 0 for the
    first page)."""
    query = select(ProtocolDeviation, Participant.code).join(
        Participant, Participant.id == ProtocolDeviation.participant_id
    )
    query = query.where(ProtocolDeviation.study_id == study.id)
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(ProtocolDeviation.site_id.in_(sites))
    if state is not None:
        query = query.where(ProtocolDeviation.state == state.value)
    if decided_only:
        query = query.where(ProtocolDeviation.state != DeviationState.proposed.value)
    if participant is not None:
        query = query.where(Participant.code == participant)
    if newest_first:
        if after_id:
            query = query.where(ProtocolDeviation.id < after_id)
        query = query.order_by(ProtocolDeviation.id.desc())
    else:
        query = query.where(ProtocolDeviation.id > after_id).order_by(ProtocolDeviation.id)
    rows = session.execute(query.limit(limit)).all()
    versions = _versions_of(session, [row.id for row, _ in rows])
    return [_summary(study, row, code, versions.get(row.id, [])) for row, code in rows]


def _versions_of(
    session: Session, deviation_ids: Sequence[int]
) -> dict[int, list[ProtocolDeviationVersion]]:
    found: dict[int, list[ProtocolDeviationVersion]] = {}
    if not deviation_ids:
        return found
    rows = session.scalars(
        select(ProtocolDeviationVersion)
        .where(ProtocolDeviationVersion.deviation_id.in_(deviation_ids))
        .order_by(ProtocolDeviationVersion.deviation_id, ProtocolDeviationVersion.number)
    )
    for row in rows:
        found.setdefault(row.deviation_id, []).append(row)
    return found


def _summary(
    study: Study,
    row: ProtocolDeviation,
    code: str,
    versions: Sequence[ProtocolDeviationVersion],
) -> DeviationSummary:
    folded = fold_deviation(
        DeviationVersion(v.number, DeviationVersionKind(v.kind), v.fields) for v in versions
    )
    values = folded.fields
    sites = {s.id: s.code for s in study.sites}
    return DeviationSummary(
        id=row.id,
        number=number_words(row.number),
        participant=code,
        site=sites.get(row.site_id, ""),
        state=DeviationState(row.state),
        category=DeviationCategory(values["category"]),
        occurred_on=date.fromisoformat(values["occurred_on"]),
        description=values["description"],
        important=bool(values.get("important")),
        corrective_action=values.get("corrective_action"),
        proposed=row.source is not None,
        created_at=row.created_at,
        version_count=row.versions,
    )


def _read(session: Session, study: Study, deviation: ProtocolDeviation) -> DeviationRead:
    code = session.scalar(
        select(Participant.code).where(Participant.id == deviation.participant_id)
    )
    versions = _versions_of(session, [deviation.id]).get(deviation.id, [])
    people = {v.recorded_by for v in versions if v.recorded_by is not None}
    found = session.execute(select(User.id, User.email).where(User.id.in_(people)))
    emails = {user_id: email for user_id, email in found}
    summary = _summary(study, deviation, code or "", versions)
    return DeviationRead(
        **summary.model_dump(),
        versions=[
            DeviationVersionRead(
                number=v.number,
                kind=DeviationVersionKind(v.kind),
                fields={k: value for k, value in v.fields.items() if k != "note"},
                note=v.fields.get("note"),
                recorded_at=v.recorded_at,
                recorded_by=emails.get(v.recorded_by, SYSTEM) if v.recorded_by else SYSTEM,
            )
            for v in versions
        ],
    )


# --- proposals ------------------------------------------------------------------------
@dataclass(frozen=True)
class LateSurvey:
    """A survey done after its window closed: the finding a proposal is made from."""

    survey_id: int
    participant_id: int
    timepoint: str
    done_on: date
    closes_on: date

    @property
    def source(self) -> str:
        return f"{OUTSIDE_WINDOW_SOURCE}{self.survey_id}"

    def description(self) -> str:
        return (
            f"The {timepoint_name(self.timepoint)} was done on {self.done_on.isoformat()}, "
            f"after its window closed on {self.closes_on.isoformat()}."
        )


def unproposable_timepoints(definition: StudyDefinition) -> frozenset[str]:
    """Timepoints whose surveys are never proposed: those only some arms have, when any
    role that reads deviations is blind to arms in this study (the proposal would say
    the participant has the timepoint, so tell the arm). A coordinator who may see arms
    records such a deviation by hand."""
    readers = [role for role in Role if has_permission(role, Permission.read_safety)]
    hidden: frozenset[str] = frozenset()
    for role in readers:
        hidden |= policy_for(role, definition).hidden_timepoints
    return hidden


def find_late_surveys(
    session: Session, *, study: Study, now: datetime, sites: Collection[int] | None = None
) -> list[LateSurvey]:
    """Staff-entered surveys completed by `now` and done after their window closed,
    without a proposal yet (at these sites, if given); a read only."""
    definition = definition_of(study)
    proposed = (
        select(ProtocolDeviation.id)
        .where(
            ProtocolDeviation.source
            == literal(OUTSIDE_WINDOW_SOURCE) + cast(SurveyInstance.id, String)
        )
        .exists()
    )
    query = select(
        SurveyInstance.id,
        SurveyInstance.participant_id,
        SurveyInstance.timepoint,
        SurveyInstance.closes_on,
        SurveyInstance.completed_at,
        SurveyInstance.interviewed_on,
    ).where(
        SurveyInstance.study_id == study.id,
        SurveyInstance.mode == STAFF,
        SurveyInstance.completed_at.is_not(None),
        SurveyInstance.completed_at <= now,
        ~proposed,
    )
    hidden = unproposable_timepoints(definition)
    if hidden:
        query = query.where(SurveyInstance.timepoint.not_in(hidden))
    if sites is not None:
        query = query.where(SurveyInstance.site_id.in_(sites))
    zone = definition.zone()
    late = []
    for row in session.execute(query.order_by(SurveyInstance.id)):
        done_on = row.interviewed_on or local_date(row.completed_at, zone)
        if done_on > row.closes_on:
            late.append(
                LateSurvey(row.id, row.participant_id, row.timepoint, done_on, row.closes_on)
            )
    return late


def propose_deviations(
    session: Session, *, study: Study, now: datetime, sites: Collection[int] | None = None
) -> int:
    """Propose a deviation for every survey done after its window closed that has none
    yet (at these sites, if given): each once, however often this runs. Nothing in a
    locked study. Returns how many were proposed."""
    if study.status == StudyStatus.locked:
        return 0
    # A read first: most passes find nothing and take no lock. Then the audit chain's
    # head, which every writer takes, and the finding again under it: two finders (two
    # scheduler processes, a button) line up there, and the second sees what the first
    # proposed, never the same survey twice nor one number twice.
    if not find_late_surveys(session, study=study, now=now, sites=sites):
        return 0
    at = audit.lock_chain_head(session).at
    findings = find_late_surveys(session, study=study, now=now, sites=sites)
    if not findings:
        return 0
    participants = {
        p.id: p
        for p in session.scalars(
            select(Participant).where(Participant.id.in_({f.participant_id for f in findings}))
        )
    }
    for finding in findings:
        participant = participants[finding.participant_id]
        fields = {
            "category": DeviationCategory.outside_window.value,
            "occurred_on": finding.done_on.isoformat(),
            "description": finding.description(),
            "important": False,
            "corrective_action": None,
        }
        deviation = _add(
            session,
            study=study,
            participant=participant,
            state=DeviationState.proposed,
            kind=DeviationVersionKind.proposed,
            fields=fields,
            source=finding.source,
            actor=None,
            now=at,
        )
        audit.record(
            session,
            AuditAction.deviation_proposed,
            actor=None,
            entity_id=number_words(deviation.number),
            study_id=study.id,
            changes=_changes(participant.code, None, DeviationState.proposed, fields)
            | {"source": (None, finding.source)},
        )
    return len(findings)


def look_for_deviations(session: Session, *, study: Study, actor: Principal) -> int:
    """Propose now, at the user's sites, what the scheduler's next pass would (409 once
    the study is locked); how many were proposed."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    return propose_deviations(session, study=study, now=now, sites=reachable_sites(actor))
