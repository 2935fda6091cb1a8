"""Missed surveys by timepoint and reason (SPEC 11, issue 17 item 5), for the retention
report: how many of the randomized participants' missed surveys staff gave each reason
(`retention.rules.MissedReason`), and how many have none yet.

Counted over every group at once, never per group, and only at timepoints every arm
has for a role blind to arms (the retention report's own timepoints): what a blind
role reads is the same whichever arm a participant is in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.principal import Principal
from app.db.base import utcnow
from app.randomization.models import Allocation
from app.reports.service import groups_for, report_timepoints
from app.retention.rules import MissedReason
from app.studies import service as studies
from app.studies.models import Study
from app.surveys import windows_sql
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date

NOT_GIVEN = "not_given"


@dataclass(frozen=True)
class MissedReasons:
    timepoint: str
    counts: dict[str, int]  # reason code (and `not_given`) → missed surveys


def missed_reasons(session: Session, *, study: Study, user: Principal) -> list[MissedReasons]:
    """Per timepoint shown to the caller: missed surveys of randomized participants by
    the reason given (every reason listed, 0 when none)."""
    definition = studies.definition_of(study)
    now = utcnow()
    today = local_date(now, definition.zone())
    counted: Counter[tuple[str, str]] = Counter()
    rows = session.execute(
        select(SurveyInstance.timepoint, SurveyInstance.missed_reason, func.count())
        .join(Allocation, Allocation.participant_id == SurveyInstance.participant_id)
        .where(
            SurveyInstance.study_id == study.id,
            windows_sql.missed(SurveyInstance, today=today, now=now),
        )
        .group_by(SurveyInstance.timepoint, SurveyInstance.missed_reason)
    )
    for timepoint, reason, n in rows:
        counted[timepoint, reason or NOT_GIVEN] += n
    codes = [r.value for r in MissedReason] + [NOT_GIVEN]
    shown = report_timepoints(definition, groups_for(session, study=study, user=user))
    return [MissedReasons(t.code, {code: counted[t.code, code] for code in codes}) for t in shown]
