"""Who is due for a call (SPEC 11, issue 17 item 2): the study's call rules
(`retention.call_rules`) and the next steps coordinators set, evaluated in SQL.

- `survey_overdue` (days): a survey still not done `days` after its window opened,
  while the window is still open (once it closes, the survey is missed: it takes a
  reason instead, `missed`);
- `messages_failed` (days, read as a count): that many messages to the participant
  (invitations, reminders, new links, consent copies) could not be sent since staff
  last reached them;
- `no_contact` (days): nobody reached them for that many days (counted from their
  enrollment when never reached);
- `next_step`: the next step of their latest contact attempt falls today or earlier.

Only participants taking part are due: enrolled or randomized (not withdrawn) with a
survey still to come or open (not completed). What a role blind to arms is told
never depends on the arm: surveys, and messages about surveys, of timepoints only some
arms have are left out for it, as on the survey worklist. One page is one query for
its participant ids (a UNION of the rules) and one query per rule for the reasons of
those participants: no query per participant.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, true, union
from sqlalchemy.orm import Session, aliased

from app.auth.permissions import reachable_sites
from app.auth.principal import Principal
from app.db.server_key import sealing_keys_of
from app.keys import Keys
from app.outbox.models import MessageKind, MessageStatus, OutboxMessage
from app.outbox.service import not_about
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.randomization import blinding
from app.retention.models import ContactAttempt, ContactOutcome, hidden_indexes, shown_attempts
from app.retention.rules import NEXT_STEP, silent_since
from app.retention.schemas import CallRead, CallReasonRead, LastAttempt
from app.studies.definition import CallRule
from app.studies.models import Site, Study
from app.studies.service import definition_of
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date

Rows = Select[*tuple[Any, ...]]  # a query of a rule: participant ids and details

# Messages meant for the participant themself (an alert goes to the coordinators).
TO_PARTICIPANT = (
    MessageKind.invitation,
    MessageKind.reminder,
    MessageKind.link_reissued,
    MessageKind.consent_copy,
    MessageKind.reconsent,
)


class _Scope:
    """What every rule shares: the study, the caller's sites and blinding, today."""

    def __init__(self, study: Study, user: Principal, now: datetime, keys: Keys) -> None:
        definition = definition_of(study)
        self.study = study
        self.now = now
        self.today = local_date(now, definition.zone())
        self.hidden = blinding.policy_for(user.role, definition).hidden_timepoints
        self.hidden_attempts = hidden_indexes(keys, self.hidden)  # of contact attempts
        self.sites = reachable_sites(user)
        self.rules = definition.retention.call_rules

    def shown(self, timepoint: Any) -> ColumnElement[bool]:
        return timepoint.not_in(self.hidden) if self.hidden else true()

    def hidden_surveys(self) -> Select[Any] | None:
        if not self.hidden:
            return None
        return select(SurveyInstance.id).where(
            SurveyInstance.study_id == self.study.id, SurveyInstance.timepoint.in_(self.hidden)
        )

    def taking_part(self) -> list[ColumnElement[bool]]:
        """Participants of the caller's sites, not withdrawn, with a survey to come."""
        ahead = aliased(SurveyInstance)
        conditions = [
            Participant.study_id == self.study.id,
            Participant.status.in_([ParticipantStatus.enrolled, ParticipantStatus.randomized]),
            exists().where(
                ahead.participant_id == Participant.id,
                ahead.completed_at.is_(None),
                ahead.cancelled_at.is_(None),
                ahead.closes_on >= self.today,
                self.shown(ahead.timepoint),
            ),
        ]
        if self.sites is not None:
            conditions.append(Participant.site_id.in_(self.sites))
        return conditions


def _last_reached(scope: _Scope) -> Any:
    return (
        select(func.max(ContactAttempt.made_at))
        .where(
            ContactAttempt.participant_id == Participant.id,
            ContactAttempt.outcome == ContactOutcome.reached,
            shown_attempts(scope.hidden_attempts),
        )
        .scalar_subquery()
    )


def _survey_overdue(scope: _Scope, rule: CallRule) -> Rows:
    query: Rows = (
        select(
            Participant.id.label("pid"),
            SurveyInstance.timepoint.label("timepoint"),
            SurveyInstance.opens_on.label("since"),
        )
        .join(SurveyInstance, SurveyInstance.participant_id == Participant.id)
        .where(
            *scope.taking_part(),
            SurveyInstance.completed_at.is_(None),
            SurveyInstance.cancelled_at.is_(None),
            SurveyInstance.opens_on <= scope.today - timedelta(days=rule.days),
            SurveyInstance.closes_on >= scope.today,
            scope.shown(SurveyInstance.timepoint),
        )
    )
    return query


def _messages_failed(scope: _Scope, rule: CallRule) -> Rows:
    reached = _last_reached(scope)
    query: Rows = (
        select(Participant.id.label("pid"), func.count(OutboxMessage.id).label("count"))
        .join(
            OutboxMessage,
            and_(
                OutboxMessage.study_id == scope.study.id,
                OutboxMessage.participant_code == Participant.code,
            ),
        )
        .where(
            *scope.taking_part(),
            OutboxMessage.status == MessageStatus.failed,
            OutboxMessage.kind.in_(TO_PARTICIPANT),
            not_about(scope.hidden_surveys()),
            or_(reached.is_(None), OutboxMessage.created_at > reached),
        )
        .group_by(Participant.id)
        .having(func.count(OutboxMessage.id) >= rule.days)
    )
    return query


def _no_contact(scope: _Scope, rule: CallRule) -> Rows:
    cutoff = scope.now - timedelta(days=rule.days)
    return select(
        Participant.id.label("pid"),
        Participant.enrolled_at.label("enrolled_at"),
        _last_reached(scope).label("reached_at"),
    ).where(
        *scope.taking_part(),
        Participant.enrolled_at <= cutoff,
        ~exists().where(
            ContactAttempt.participant_id == Participant.id,
            ContactAttempt.outcome == ContactOutcome.reached,
            ContactAttempt.made_at > cutoff,
            shown_attempts(scope.hidden_attempts),
        ),
    )


def _next_step(scope: _Scope) -> Rows:
    later = aliased(ContactAttempt)
    query: Rows = (
        select(Participant.id.label("pid"), ContactAttempt.next_step_on.label("since"))
        .join(ContactAttempt, ContactAttempt.participant_id == Participant.id)
        .where(
            *scope.taking_part(),
            ContactAttempt.next_step_on <= scope.today,
            shown_attempts(scope.hidden_attempts),
            ~exists().where(
                later.participant_id == Participant.id,
                later.id > ContactAttempt.id,
                shown_attempts(scope.hidden_attempts, later),
            ),
        )
    )
    return query


_RULES = {
    "survey_overdue": _survey_overdue,
    "messages_failed": _messages_failed,
    "no_contact": _no_contact,
}


def due_for_call(
    session: Session, *, study: Study, user: Principal, after_id: int, limit: int, now: datetime
) -> list[CallRead]:
    """Participants due for a call at the caller's sites, by row id after a cursor, each
    with every reason and their latest contact attempt."""
    scope = _Scope(study, user, now, sealing_keys_of(session))
    queries = [(rule, _RULES[rule.kind](scope, rule).subquery()) for rule in scope.rules]
    steps = _next_step(scope).subquery()
    ids = union(*[select(q.c.pid) for _, q in queries], select(steps.c.pid)).subquery()
    page = list(
        session.scalars(
            select(ids.c.pid).where(ids.c.pid > after_id).order_by(ids.c.pid).limit(limit)
        )
    )
    if not page:
        return []
    reasons: defaultdict[int, list[CallReasonRead]] = defaultdict(list)
    zone = definition_of(study).zone()
    for rule, q in queries:
        for row in session.execute(select(q).where(q.c.pid.in_(page))).mappings():
            reasons[row["pid"]].append(_reason(rule, row, zone))
    for row in session.execute(select(steps).where(steps.c.pid.in_(page))).mappings():
        reasons[row["pid"]].append(
            CallReasonRead(code=NEXT_STEP, kind=NEXT_STEP, since=row["since"])
        )
    people = session.execute(
        select(Participant.id, Participant.code, Site.code)
        .join(Site, Site.id == Participant.site_id)
        .where(Participant.id.in_(page))
    ).all()
    last = _last_attempts(session, page, scope.hidden_attempts)
    return [
        CallRead(
            id=pid,
            participant=code,
            site=site,
            reasons=sorted(reasons[pid], key=lambda r: (r.kind, r.code, r.timepoint or "")),
            last_attempt=last.get(pid),
        )
        for pid, code, site in sorted(people)
    ]


def _reason(rule: CallRule, row: Any, zone: Any) -> CallReasonRead:
    if rule.kind == "survey_overdue":
        return CallReasonRead(
            code=rule.code, kind=rule.kind, timepoint=row["timepoint"], since=row["since"]
        )
    if rule.kind == "messages_failed":
        return CallReasonRead(code=rule.code, kind=rule.kind, count=row["count"])
    reached = row["reached_at"]
    return CallReasonRead(
        code=rule.code,
        kind=rule.kind,
        since=silent_since(
            last_reached=local_date(_aware(reached), zone) if reached else None,
            taking_part_since=local_date(_aware(row["enrolled_at"]), zone),
        ),
    )


def _aware(at: datetime) -> datetime:
    """A time read back from a subquery (SQLite gives it without its zone: UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _last_attempts(
    session: Session, ids: list[int], hidden: frozenset[str]
) -> dict[int, LastAttempt]:
    latest = (
        select(func.max(ContactAttempt.id))
        .where(ContactAttempt.participant_id.in_(ids), shown_attempts(hidden))
        .group_by(ContactAttempt.participant_id)
    )
    rows = session.scalars(select(ContactAttempt).where(ContactAttempt.id.in_(latest)))
    return {
        a.participant_id: LastAttempt(
            method=a.method, outcome=a.outcome, made_at=a.made_at, next_step_on=a.next_step_on
        )
        for a in rows
    }
