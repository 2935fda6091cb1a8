"""Earning (SPEC 11): the amounts a completed survey owes, in the transaction that
completes it, whoever completes it (the participant's link, a staff interview).

On the survey's submit path, so cheap: a study without incentives, or a timepoint it
does not pay for, costs no query. Once per survey and kind whatever retries or races:
`INSERT ... ON CONFLICT DO NOTHING` on the unique (instance, kind), and only an entry
actually inserted is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.incentives.models import EntryKind, EntryState, IncentiveEntry
from app.incentives.rules import cents, local_day, on_time
from app.studies.definition import StudyDefinition

PARTICIPANT = "participant"  # the actor named when the participant completed it


@dataclass(frozen=True)
class Completed:
    """The survey just completed, as the ledger needs it (no survey import: the ledger
    sits below the surveys)."""

    study_id: int
    site_id: int
    participant_id: int
    participant_code: str
    instance_id: int
    timepoint: str
    opens_on: date
    # The day it was done: the interview's date when staff entered it, else None (the
    # completion's day in the study's zone).
    interviewed_on: date | None = None


def entity(code: str, timepoint: str, kind: str) -> str:
    """How the audit trail names an entry: the same in every arm and every database."""
    return f"{code}:{timepoint}:{kind}"


def earn(
    session: Session,
    *,
    definition: StudyDefinition,
    survey: Completed,
    actor: Principal | None,
    now: datetime,
) -> list[int]:
    """The ids of the entries the survey earns (the timepoint's amount, and the on-time bonus when
    done within `on_time_days` of the window's opening); none when the study pays
    nothing for this timepoint, or it earned them before."""
    incentives = definition.incentives
    if incentives is None or survey.timepoint not in incentives.per_timepoint:
        return []
    amounts = [(EntryKind.completion, incentives.per_timepoint[survey.timepoint])]
    done_on = survey.interviewed_on or local_day(now, definition.zone())
    bonus = incentives.on_time_bonus
    if bonus and on_time(opens_on=survey.opens_on, done_on=done_on, days=incentives.on_time_days):
        amounts.append((EntryKind.on_time_bonus, bonus))
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    earned: list[int] = []
    for kind, amount in amounts:
        if not cents(amount):
            continue  # a timepoint that pays 0 is written down as paying nothing
        added = session.execute(
            insert(IncentiveEntry)
            .values(
                study_id=survey.study_id,
                site_id=survey.site_id,
                participant_id=survey.participant_id,
                participant_code=survey.participant_code,
                instance_id=survey.instance_id,
                timepoint=survey.timepoint,
                kind=kind.value,
                amount_cents=cents(amount),
                currency=incentives.currency,
                state=EntryState.earned.value,
                earned_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["instance_id", "kind"])
            .returning(IncentiveEntry.id)
        ).scalar_one_or_none()
        if added is None:
            continue
        earned.append(added)
        audit.record(
            session,
            AuditAction.incentive_earned,
            actor=actor,
            actor_label=PARTICIPANT,
            entity_id=entity(survey.participant_code, survey.timepoint, kind.value),
            study_id=survey.study_id,
            changes={
                "state": (None, EntryState.earned.value),
                "amount_cents": (None, cents(amount)),
                "currency": (None, incentives.currency),
            },
        )
    return earned
