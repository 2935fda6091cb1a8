"""What coordinators work from: surveys due, overdue or missed at their sites, safety
alerts to acknowledge, and emails that could not be sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import may_access_site, reachable_sites
from app.auth.principal import Principal
from app.errors import AlertNotFound, Conflict
from app.outbox.models import MessageStatus, OutboxMessage
from app.outbox.service import failed_messages, not_about
from app.randomization import blinding
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import windows_sql
from app.surveys.models import Alert, SurveyInstance
from app.surveys.scheduling import Window, local_date, overdue, status


class WorkStatus(StrEnum):
    open = "open"
    overdue = "overdue"  # open, and past the last reminder
    missed = "missed"


@dataclass(frozen=True)
class WorkRow:
    instance: SurveyInstance
    status: str
    overdue: bool


FAILED_EMAILS_SHOWN = 50  # failed emails listed with the worklist, newest first


@dataclass(frozen=True)
class Worklist:
    rows: list[WorkRow]
    alerts_open: int
    messages_failed: int
    # Rows that need action too: emails that could not be sent (no address, refused),
    # of the user's sites, none a blind role may not see; newest first, at most
    # FAILED_EMAILS_SHOWN (`messages_failed` counts them all).
    failed_emails: Sequence[OutboxMessage] = ()


class WorkSort(StrEnum):
    """Orders of the console's worklist (the API's is by id, for its cursor)."""

    closes_on = "closes_on"  # the most urgent first
    opens_on = "opens_on"
    participant = "participant"
    timepoint = "timepoint"


_ORDER: dict[WorkSort, tuple[ColumnElement[Any], ...]] = {
    # Each order ends with the id: pages taken by offset then never skip nor repeat a row.
    WorkSort.closes_on: (SurveyInstance.closes_on.asc(), SurveyInstance.id.asc()),
    WorkSort.opens_on: (SurveyInstance.opens_on.asc(), SurveyInstance.id.asc()),
    WorkSort.participant: (
        SurveyInstance.participant_code.asc(),
        SurveyInstance.opens_on.asc(),
        SurveyInstance.id.asc(),
    ),
    WorkSort.timepoint: (
        SurveyInstance.timepoint.asc(),
        SurveyInstance.closes_on.asc(),
        SurveyInstance.id.asc(),
    ),
}


def worklist(
    session: Session,
    *,
    study: Study,
    user: Principal,
    wanted: WorkStatus | None,
    after_id: int,
    limit: int,
    now: datetime,
    sort: WorkSort | None = None,
    offset: int = 0,
    site_id: int | None = None,
    timepoint: str | None = None,
) -> Worklist:
    """The study's surveys at the user's sites, oldest first (or in `sort` order, from
    `offset`), with how many alerts wait there, and the emails that failed."""
    definition = definition_of(study)
    zone = definition.zone()
    today = local_date(now, zone)
    reminders = definition.reminders.after_days
    conditions: dict[WorkStatus, ColumnElement[bool]] = {
        WorkStatus.open: windows_sql.is_open(SurveyInstance, today=today, now=now),
        WorkStatus.overdue: windows_sql.overdue(
            SurveyInstance, today=today, now=now, reminder_days=reminders
        ),
        WorkStatus.missed: windows_sql.missed(SurveyInstance, today=today, now=now),
    }
    query = select(SurveyInstance).where(
        SurveyInstance.study_id == study.id, SurveyInstance.id > after_id
    )
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(SurveyInstance.site_id.in_(sites))
    if site_id is not None:
        query = query.where(SurveyInstance.site_id == site_id)
    if timepoint is not None:
        query = query.where(SurveyInstance.timepoint == timepoint)
    if wanted is not None:
        # Work is a survey with no completion or cancellation recorded. Said in these
        # words (beside the rule at `now`, which also counts events stamped after it as
        # not yet happened), the filter is the partial index's own predicate, so a page
        # by closing date reads `ix_survey_instances_pending_by_closing` in order and
        # stops at the page's end instead of sorting every survey of the study.
        query = query.where(
            conditions[wanted],
            SurveyInstance.completed_at.is_(None),
            SurveyInstance.cancelled_at.is_(None),
        )
    hidden = blinding.policy_for(user.role, definition).hidden_timepoints
    if hidden:  # a survey only some arms have would tell a blind role the arm
        query = query.where(SurveyInstance.timepoint.not_in(hidden))
    order = _ORDER[sort] if sort is not None else (SurveyInstance.id.asc(),)
    rows = []
    for instance in session.scalars(query.order_by(*order).offset(offset).limit(limit)):
        span = Window(instance.opens_on, instance.closes_on)
        current = status(
            span,
            now=now,
            zone=zone,
            completed_at=instance.completed_at,
            cancelled_at=instance.cancelled_at,
        )
        late = current == "open" and overdue(span, now=now, zone=zone, reminder_days=reminders)
        rows.append(WorkRow(instance, current, late))
    hidden_surveys = _hidden_surveys(study, user)
    return Worklist(
        rows,
        alerts_open=_count(session, study, sites, Alert, Alert.acknowledged_at.is_(None)),
        messages_failed=_count(
            session,
            study,
            sites,
            OutboxMessage,
            and_(OutboxMessage.status == MessageStatus.failed, not_about(hidden_surveys)),
        ),
        failed_emails=failed_messages(
            session,
            study_id=study.id,
            site_ids=sites,
            limit=FAILED_EMAILS_SHOWN,
            hidden_surveys=hidden_surveys,
        ),
    )


def _hidden_surveys(study: Study, user: Principal) -> Select[Any] | None:
    """The ids of the study's surveys the user's blinding policy hides, as a query."""
    hidden = blinding.policy_for(user.role, definition_of(study)).hidden_timepoints
    if not hidden:
        return None
    return select(SurveyInstance.id).where(
        SurveyInstance.study_id == study.id, SurveyInstance.timepoint.in_(hidden)
    )


def _count(
    session: Session,
    study: Study,
    sites: frozenset[int] | None,
    table: type[Alert] | type[OutboxMessage],
    condition: ColumnElement[bool],
) -> int:
    query = select(func.count()).select_from(table).where(table.study_id == study.id, condition)
    if sites is not None:
        query = query.where(table.site_id.in_(sites))
    return session.scalar(query) or 0


def alerts(
    session: Session,
    *,
    study: Study,
    user: Principal,
    open_only: bool,
    after_id: int,
    limit: int,
    participant_code: str | None = None,
) -> Sequence[Alert]:
    """The study's safety alerts at the user's sites (of one participant), oldest first."""
    query = select(Alert).where(Alert.study_id == study.id, Alert.id > after_id)
    if participant_code is not None:
        query = query.where(Alert.participant_code == participant_code)
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(Alert.site_id.in_(sites))
    if open_only:
        query = query.where(Alert.acknowledged_at.is_(None))
    return session.scalars(query.order_by(Alert.id).limit(limit)).all()


def acknowledge(
    session: Session,
    *,
    study: Study,
    alert_id: int,
    note: str,
    actor: Principal,
    participant_code: str | None = None,
) -> Alert:
    """Record that a coordinator has seen to the alert (of that participant, when given),
    with a note (audited)."""
    now = audit.lock_chain_head(session).at
    alert = session.scalars(
        select(Alert).where(Alert.id == alert_id, Alert.study_id == study.id).with_for_update()
    ).first()
    if alert is None or not may_access_site(actor, alert.site_id):
        raise AlertNotFound(f"no alert {alert_id}")
    if participant_code is not None and alert.participant_code != participant_code:
        raise AlertNotFound(f"no alert {alert_id} for participant {participant_code}")
    if alert.acknowledged_at is not None:
        raise Conflict("the alert was already acknowledged")
    alert.acknowledged_at = now
    alert.acknowledged_by = actor.id
    alert.note = note
    session.flush()
    audit.record(
        session,
        AuditAction.alert_acknowledged,
        actor=actor,
        entity_id=alert.id,
        study_id=study.id,
        reason=note,
        changes={"acknowledged": (False, True)},
    )
    return alert


def messages_failed(
    session: Session, *, study: Study, user: Principal, limit: int
) -> Sequence[OutboxMessage]:
    """Emails of the study (the user's sites) that could not be sent, newest first; for a
    blind role, none about a survey only some arms have."""
    return failed_messages(
        session,
        study_id=study.id,
        site_ids=reachable_sites(user),
        limit=limit,
        hidden_surveys=_hidden_surveys(study, user),
    )
