"""Adverse events (SPEC 9): opening one, adding versions (follow-up, medical review,
closure), reading them, their reporting deadlines, and acknowledging a safety alert with
what followed it.

Every change takes the audit chain's head first (as every write does), so writers line
up; the version number still comes from one atomic `UPDATE ... RETURNING` on the
event's counter, so two follow-ups saved at once each get a number of their own and
neither is lost, whatever the order the database grants its locks in.

After each version, in the same transaction: the event's deadlines are refreshed (new
ones inserted, ones no longer applying marked so, met ones never touched); a serious
event enqueues one notification (deduplicated per event); a death records the
participant as died (every message stops).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.models import User
from app.auth.permissions import Permission, has_permission, may_access_site, reachable_sites
from app.auth.principal import Principal
from app.errors import (
    AdverseEventClosed,
    AdverseEventNotFound,
    AlertNotFound,
    CannotWithdraw,
    DeadlineNotOpen,
    FieldProblem,
    Forbidden,
    InvalidInput,
    Loc,
    NotEnrolled,
)
from app.outbox import service as outbox
from app.outbox.models import MessageKind
from app.participants.leaving import LeavingCategory, LeavingKind
from app.participants.lifecycle import ParticipantStatus
from app.participants.lookup import get_participant
from app.participants.models import Participant
from app.participants.withdrawal import Leaving, record_leaving
from app.randomization import blinding
from app.safety import deadlines as rules
from app.safety.events import (
    SERIOUSNESS_CRITERIA,
    EventState,
    Outcome,
    Version,
    VersionKind,
    fold,
    is_death,
    is_serious,
)
from app.safety.labels import event_label
from app.safety.models import AdverseEvent, AdverseEventVersion, SafetyDeadline
from app.safety.schemas import (
    AlertAcknowledgement,
    AlertOutcome,
    DueRow,
    EventCreate,
    EventView,
    VersionCreate,
    as_version,
)
from app.studies.lifecycle import ensure_not_locked
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import worklist
from app.surveys.models import Alert, SurveyInstance
from app.surveys.scheduling import local_date

# Outcomes after which the event has ended: its end date is then required at closure.
ENDED = frozenset({Outcome.recovered, Outcome.recovered_with_sequelae, Outcome.fatal})


@dataclass(frozen=True)
class Acknowledged:
    alert: Alert
    event: AdverseEvent | None


# --- writes ----------------------------------------------------------------------------


def open_event(
    session: Session,
    *,
    study: Study,
    code: str,
    data: EventCreate,
    actor: Principal,
    alert_note: str | None = None,
    loc: Loc = (),
) -> EventView:
    """Open an adverse event of the participant with its initial report (version 1); with
    `data.alert`, the alert is acknowledged (with `alert_note`, else one naming the event)
    and linked (one event per alert). `loc` prefixes the paths of input problems."""
    now = audit.lock_chain_head(session).at
    ensure_not_locked(study.status)
    participant = get_participant(session, study=study, code=code, user=actor, for_update=True)
    if participant.status == ParticipantStatus.ineligible:
        raise NotEnrolled(f"{code} was never enrolled")
    zone = definition_of(study).zone()
    today = local_date(now, zone)
    fields = data.report()
    fields.setdefault("aware_on", today.isoformat())
    _check_report(fields, given=fields, today=today, loc=loc)
    number = (
        session.scalar(
            select(func.max(AdverseEvent.number)).where(AdverseEvent.study_id == study.id)
        )
        or 0
    ) + 1
    event = AdverseEvent(
        study_id=study.id,
        site_id=participant.site_id,
        participant_id=participant.id,
        number=number,
        alert_id=None,
        versions=1,
        closed=False,
        opened_at=now,
        opened_by=actor.id,
    )
    session.add(event)
    session.flush()
    version = AdverseEventVersion(
        event_id=event.id,
        number=1,
        kind=VersionKind.initial.value,
        fields=fields,
        recorded_at=now,
        recorded_by=actor.id,
    )
    session.add(version)
    if data.alert is not None:
        alert = worklist.acknowledge(
            session,
            study=study,
            alert_id=data.alert,
            note=alert_note or f"adverse event {event_label(event.number)} opened",
            actor=actor,
            participant_code=participant.code,
        )
        event.alert_id = alert.id
    session.flush()
    audit.record(
        session,
        AuditAction.adverse_event_opened,
        actor=actor,
        entity_id=event_label(event.number),
        study_id=study.id,
        changes={
            "participant": (None, participant.code),
            "alert": (None, event.alert_id),
            **{name: (None, value) for name, value in fields.items()},
        },
    )
    _after_version(
        session,
        study=study,
        event=event,
        participant=participant,
        before=EventState(),
        actor=actor,
        now=now,
    )
    return view_of(session, study=study, event=event)


def add_version(
    session: Session, *, study: Study, event_id: int, data: VersionCreate, actor: Principal
) -> EventView:
    """Add the next version of the event: a follow-up or closure (roles that record
    safety), or a medical review (roles that review safety and may see arms). A closed
    event takes only reviews (409 otherwise)."""
    now = audit.lock_chain_head(session).at
    ensure_not_locked(study.status)
    kind = data.kind
    if kind is VersionKind.review:
        definition = definition_of(study)
        if not (
            has_permission(actor.role, Permission.review_safety)
            and blinding.policy_for(actor.role, definition).arms
        ):
            raise Forbidden("a medical review is recorded by a role that may see arms")
    elif not has_permission(actor.role, Permission.record_safety):
        raise Forbidden(f"this role may not record a {kind.value}")
    event = _event(session, study=study, event_id=event_id, user=actor)
    if event.closed and kind is not VersionKind.review:
        raise AdverseEventClosed(f"{event_label(event.number)} is closed; only a review may follow")
    previous = _versions(session, event_id=event.id)
    before = fold(as_version(v) for v in previous)
    given = data.given()
    after = fold([*(as_version(v) for v in previous), Version(len(previous) + 1, kind, given)])
    today = local_date(now, definition_of(study).zone())
    _check_report(after.report, given=given, today=today)
    if kind is VersionKind.closure:
        _check_closure(after.report)
    # The next number, atomically: two versions saved at once get two numbers.
    number = session.execute(
        update(AdverseEvent)
        .where(AdverseEvent.id == event.id)
        .values(versions=AdverseEvent.versions + 1)
        .returning(AdverseEvent.versions)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(event, "versions", number)
    session.add(
        AdverseEventVersion(
            event_id=event.id,
            number=number,
            kind=kind.value,
            fields=given,
            recorded_at=now,
            recorded_by=actor.id,
        )
    )
    if kind is VersionKind.closure:
        event.closed = True
    session.flush()
    audit.record(
        session,
        AuditAction.adverse_event_versioned,
        actor=actor,
        entity_id=event_label(event.number),
        study_id=study.id,
        changes={
            "version": (number - 1, number),
            "kind": (None, kind.value),
            **{name: (None, value) for name, value in given.items()},
        },
    )
    participant = session.scalars(
        select(Participant)
        .where(Participant.id == event.participant_id)
        .with_for_update(of=Participant)
        .execution_options(populate_existing=True)
    ).one()
    _after_version(
        session,
        study=study,
        event=event,
        participant=participant,
        before=before,
        actor=actor,
        now=now,
    )
    return view_of(session, study=study, event=event)


def may_report(user: Principal) -> bool:
    """Whether the user may record that a deadline was met: those who record events and
    those who review them (a safety reviewer often files the IRB report)."""
    return has_permission(user.role, Permission.record_safety) or has_permission(
        user.role, Permission.review_safety
    )


def report_deadline(
    session: Session,
    *,
    study: Study,
    event_id: int,
    code: str,
    reported_on: date,
    reference: str,
    actor: Principal,
) -> EventView:
    """Record that a deadline was met: reported on that day (not in the future, not
    before the team became aware of the event), with the recipient's reference (409 if
    it does not apply or was met already)."""
    now = audit.lock_chain_head(session).at
    if not may_report(actor):
        raise Forbidden("this role may not record a report")
    event = _event(session, study=study, event_id=event_id, user=actor)
    deadline = session.scalars(
        select(SafetyDeadline)
        .where(SafetyDeadline.event_id == event.id, SafetyDeadline.code == code)
        .with_for_update()
    ).first()
    if deadline is None or not deadline.applies:
        raise DeadlineNotOpen(f"{event_label(event.number)} has no deadline {code!r} to meet")
    if deadline.reported_on is not None:
        raise DeadlineNotOpen(f"{code} was reported on {deadline.reported_on.isoformat()}")
    today = local_date(now, definition_of(study).zone())
    first = _versions(session, event_id=event.id)[0].fields.get("aware_on")
    problem = None
    if reported_on > today:
        problem = f"{reported_on} is in the future (today {today})"
    elif first and reported_on.isoformat() < first:
        problem = f"{reported_on} is before the team became aware of the event ({first})"
    if problem:
        raise InvalidInput([FieldProblem(("reported_on",), problem)])
    deadline.reported_on = reported_on
    deadline.reference = reference
    deadline.reported_by = actor.id
    deadline.reported_at = now
    session.flush()
    audit.record(
        session,
        AuditAction.adverse_event_reported,
        actor=actor,
        entity_id=event_label(event.number),
        study_id=study.id,
        changes={
            "deadline": (None, code),
            "report_to": (None, deadline.report_to),
            "reported_on": (None, reported_on.isoformat()),
            "reference": (None, reference),
        },
    )
    return view_of(session, study=study, event=event)


def acknowledge_alert(
    session: Session,
    *,
    study: Study,
    alert_id: int,
    body: AlertAcknowledgement,
    actor: Principal,
) -> Acknowledged:
    """Acknowledge a safety alert with what followed: no event (the note says what was
    done), or an adverse event opened from it, prefilled from the alert (`body.event`
    completes or replaces the prefill; 422 names what is still missing)."""
    if body.outcome is AlertOutcome.no_event:
        assert body.note is not None  # the schema requires it
        alert = worklist.acknowledge(
            session, study=study, alert_id=alert_id, note=body.note, actor=actor
        )
        return Acknowledged(alert, None)
    if not has_permission(actor.role, Permission.record_safety):
        raise Forbidden("this role may not open an adverse event")
    alert = _alert(session, study=study, alert_id=alert_id, user=actor)
    prefill = prefill_from_alert(session, study=study, alert_id=alert_id, user=actor)
    given = body.event.given() if body.event is not None else {}
    data = _event_create({**prefill, **given, "alert": alert.id}, loc=("event",))
    opened = open_event(
        session,
        study=study,
        code=alert.participant_code,
        data=data,
        actor=actor,
        alert_note=body.note,
        loc=("event",),
    )
    return Acknowledged(alert, opened.event)


def prefill_from_alert(
    session: Session, *, study: Study, alert_id: int, user: Principal
) -> dict[str, Any]:
    """An event's fields as an alert suggests them: the rule's text as the term, the day
    the survey was completed as the onset, the day the alert was raised as the day the
    team became aware (all in the study's zone)."""
    alert = _alert(session, study=study, alert_id=alert_id, user=user)
    zone = definition_of(study).zone()
    completed = session.scalar(
        select(SurveyInstance.completed_at).where(SurveyInstance.id == alert.instance_id)
    )
    return {
        "AETERM": alert.text[:500],
        "AESTDTC": local_date(completed or alert.raised_at, zone).isoformat(),
        "aware_on": local_date(alert.raised_at, zone).isoformat(),
    }


# --- reads -----------------------------------------------------------------------------


def get_event(session: Session, *, study: Study, event_id: int, user: Principal) -> EventView:
    """One event with every version and deadline (404 for another site's)."""
    return view_of(
        session, study=study, event=_event(session, study=study, event_id=event_id, user=user)
    )


def list_events(
    session: Session,
    *,
    study: Study,
    user: Principal,
    after_id: int,
    limit: int,
    participant: str | None = None,
    serious: bool | None = None,
    open_only: bool | None = None,
) -> list[EventView]:
    """Events of the user's sites in the order they were opened, after a cursor; filtered
    by participant, seriousness (of the latest report) and whether still open."""
    query = select(AdverseEvent).where(AdverseEvent.study_id == study.id)
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(AdverseEvent.site_id.in_(sites))
    if participant is not None:
        query = query.where(
            AdverseEvent.participant_id.in_(
                select(Participant.id).where(
                    Participant.study_id == study.id, Participant.code == participant
                )
            )
        )
    if open_only is not None:
        query = query.where(AdverseEvent.closed.is_(not open_only))
    found: list[EventView] = []
    cursor = after_id
    # Seriousness is in the sealed versions: read pages in order until this one is full
    # (or the events end), so that the cursor never skips one.
    while True:
        rows = session.scalars(
            query.where(AdverseEvent.id > cursor).order_by(AdverseEvent.id).limit(limit)
        ).all()
        for view in _views(session, study=study, events=rows):
            if serious is None or is_serious(view.state.report) == serious:
                found.append(view)
                if len(found) == limit:
                    return found
        if len(rows) < limit:
            return found
        cursor = rows[-1].id


def due(session: Session, *, study: Study, user: Principal, limit: int) -> list[DueRow]:
    """Deadlines that apply and are not met, of events at the user's sites, the one due
    first at the top."""
    query = (
        select(SafetyDeadline, AdverseEvent, Participant.code)
        .join(AdverseEvent, AdverseEvent.id == SafetyDeadline.event_id)
        .join(Participant, Participant.id == AdverseEvent.participant_id)
        .where(
            SafetyDeadline.study_id == study.id,
            SafetyDeadline.applies.is_(True),
            SafetyDeadline.reported_on.is_(None),
        )
    )
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(AdverseEvent.site_id.in_(sites))
    codes = {s.id: s.code for s in study.sites}
    rows = session.execute(
        query.order_by(SafetyDeadline.due_at, SafetyDeadline.id).limit(limit)
    ).all()
    return [DueRow(d, e, code, codes[e.site_id]) for d, e, code in rows]


def view_of(session: Session, *, study: Study, event: AdverseEvent) -> EventView:
    """The event as its answer shows it."""
    return _views(session, study=study, events=[event])[0]


# --- inside ----------------------------------------------------------------------------


def _event(session: Session, *, study: Study, event_id: int, user: Principal) -> AdverseEvent:
    event = session.get(AdverseEvent, event_id)
    if event is None or event.study_id != study.id or not may_access_site(user, event.site_id):
        raise AdverseEventNotFound(f"no adverse event {event_id}")
    return event


def _alert(session: Session, *, study: Study, alert_id: int, user: Principal) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None or alert.study_id != study.id or not may_access_site(user, alert.site_id):
        raise AlertNotFound(f"no alert {alert_id}")
    return alert


def _versions(session: Session, *, event_id: int) -> Sequence[AdverseEventVersion]:
    return session.scalars(
        select(AdverseEventVersion)
        .where(AdverseEventVersion.event_id == event_id)
        .order_by(AdverseEventVersion.number)
    ).all()


def _views(session: Session, *, study: Study, events: Sequence[AdverseEvent]) -> list[EventView]:
    if not events:
        return []
    ids = [e.id for e in events]
    versions: dict[int, list[AdverseEventVersion]] = {i: [] for i in ids}
    for row in session.scalars(
        select(AdverseEventVersion)
        .where(AdverseEventVersion.event_id.in_(ids))
        .order_by(AdverseEventVersion.event_id, AdverseEventVersion.number)
    ):
        versions[row.event_id].append(row)
    deadlines: dict[int, list[SafetyDeadline]] = {i: [] for i in ids}
    for d in session.scalars(
        select(SafetyDeadline)
        .where(SafetyDeadline.event_id.in_(ids))
        .order_by(SafetyDeadline.due_at, SafetyDeadline.id)
    ):
        deadlines[d.event_id].append(d)
    people: dict[int, str] = {
        i: code
        for i, code in session.execute(
            select(Participant.id, Participant.code).where(
                Participant.id.in_({e.participant_id for e in events})
            )
        )
    }
    author_ids = {v.recorded_by for rows in versions.values() for v in rows}
    authors: dict[int, str] = {
        i: email
        for i, email in session.execute(select(User.id, User.email).where(User.id.in_(author_ids)))
    }
    sites = {s.id: s.code for s in study.sites}
    return [
        EventView(
            event=e,
            participant=people[e.participant_id],
            site=sites[e.site_id],
            versions=versions[e.id],
            deadlines=deadlines[e.id],
            authors=authors,
        )
        for e in events
    ]


def _after_version(
    session: Session,
    *,
    study: Study,
    event: AdverseEvent,
    participant: Participant,
    before: EventState,
    actor: Principal,
    now: datetime,
) -> None:
    """What a new version sets off: deadlines refreshed, a serious event's notification,
    a death recorded."""
    versions = _versions(session, event_id=event.id)
    after = fold(as_version(v) for v in versions)
    _refresh_deadlines(session, study=study, event=event, versions=versions)
    if is_serious(after.report):
        # One message per event, however many versions keep it serious (deduplicated);
        # it names no health detail (the scheduler writes a link to the console).
        outbox.enqueue(
            session,
            kind=MessageKind.safety_event,
            dedupe_key=f"safety_event:{event.id}",
            subject_id=event.id,
            now=now,
            study_id=study.id,
            site_id=event.site_id,
        )
    if is_death(after.report) and not is_death(before.report):
        _record_death(
            session,
            study=study,
            event=event,
            participant=participant,
            fields=after.report,
            actor=actor,
            now=now,
        )


def _refresh_deadlines(
    session: Session, *, study: Study, event: AdverseEvent, versions: Sequence[AdverseEventVersion]
) -> None:
    """Bring the event's deadline rows to what its versions say: new ones inserted, ones
    no longer applying marked so (applying again: marked again), met ones untouched."""
    definition = definition_of(study)
    computed = rules.compute(
        definition.safety.deadlines,
        [rules.Stamped(as_version(v), v.recorded_at) for v in versions],
        definition.zone(),
    )
    rows = {
        d.code: d
        for d in session.scalars(select(SafetyDeadline).where(SafetyDeadline.event_id == event.id))
    }
    for found in computed:
        row = rows.get(found.code)
        if row is None:
            session.add(
                SafetyDeadline(
                    study_id=study.id,
                    event_id=event.id,
                    code=found.code,
                    report_to=found.report_to,
                    due_at=found.due_at,
                    applies=found.applies,
                )
            )
        elif row.reported_on is None:
            row.applies = found.applies
            row.due_at = found.due_at
    session.flush()


def _record_death(
    session: Session,
    *,
    study: Study,
    event: AdverseEvent,
    participant: Participant,
    fields: Mapping[str, Any],
    actor: Principal,
    now: datetime,
) -> None:
    """Record the participant as died (once): every survey and message stops. The date
    is the event's end date when a full date, else the day of the version (also when
    the leaving rules refuse the end date, such as one before enrollment). A participant
    recorded as died, or who withdrew consent to the use of their data (it ranks with
    death and stays), is left as is."""
    if participant.withdrawal_kind in (LeavingKind.died, LeavingKind.data):
        return
    today = local_date(now, definition_of(study).zone())
    end = str(fields.get("AEENDTC") or "")
    on = date.fromisoformat(end) if len(end) == 10 else today
    reason = f"died (adverse event {event_label(event.number)})"
    for day in dict.fromkeys((on, today)):
        try:  # the leaving rules check the date before they change anything
            record_leaving(
                session,
                study=study,
                participant=participant,
                leaving_=Leaving(reason, LeavingKind.died, day, LeavingCategory.death),
                actor=actor,
                now=now,
            )
            return
        except InvalidInput:
            continue
        except CannotWithdraw:
            # Left before leaving had kinds (no kind to rank death against): the surveys
            # and messages stopped then; the event itself still says it was fatal.
            return


def _check_report(
    fields: Mapping[str, Any], *, given: Mapping[str, Any], today: date, loc: Loc = ()
) -> None:
    """The report's rules beyond each field's type: dates not in the future (those given
    now), the end not before the onset, serious if any criterion is met (422)."""
    problems: list[FieldProblem] = []
    for name in ("AESTDTC", "AEENDTC", "aware_on"):
        value = given.get(name)
        if value and str(value) > today.isoformat()[: len(str(value))]:
            problems.append(FieldProblem((*loc, name), f"{value} is in the future (today {today})"))
    start, end = fields.get("AESTDTC"), fields.get("AEENDTC")
    if start and end:
        n = min(len(start), len(end))
        if end[:n] < start[:n]:
            problems.append(FieldProblem((*loc, "AEENDTC"), f"{end} is before the onset {start}"))
    met = [c for c in SERIOUSNESS_CRITERIA if fields.get(c)]
    if met and not fields.get("AESER"):
        problems.append(FieldProblem((*loc, "AESER"), f"must be true: {', '.join(met)} is true"))
    if problems:
        raise InvalidInput(problems)


def _check_closure(fields: Mapping[str, Any]) -> None:
    """A closure leaves a final outcome: not `recovering` (the event goes on), and an end
    date when it ended (recovered, with sequelae, fatal)."""
    outcome = fields.get("AEOUT")
    if outcome in (None, Outcome.recovering):
        raise InvalidInput(
            [FieldProblem(("AEOUT",), "a closure needs a final outcome (not recovering)")]
        )
    if outcome in ENDED and not fields.get("AEENDTC"):
        raise InvalidInput([FieldProblem(("AEENDTC",), f"an event {outcome} has an end date")])


def _event_create(values: dict[str, Any], *, loc: Loc) -> EventCreate:
    """The initial report from values put together (an alert's prefill and what the
    caller gave); 422 naming each field missing or wrong, under `loc`."""
    try:
        return EventCreate.model_validate(values)
    except ValidationError as exc:
        problems = [
            FieldProblem(
                (*loc, *e["loc"]),
                "required" if e["type"] == "missing" else str(e["msg"]),
            )
            for e in exc.errors()
        ]
        missing = [p for p in problems if p.msg == "required"]
        detail = "still missing: " + ", ".join(str(p.loc[-1]) for p in missing) if missing else None
        raise InvalidInput(problems, detail) from None
