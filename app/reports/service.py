"""The trial's progress counted from the database: CONSORT flow, retention per
timepoint, balance of strata across groups. Groups are the arms for roles the study
shows arms to, and the blinded group codes (`G1`...) for the others."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.auth.principal import Principal
from app.db.base import utcnow
from app.exports.dataset import exported_timepoints
from app.join.models import Applicant, ApplicantState
from app.participants.leaving import LeavingKind, leaves_study
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.randomization import blinding
from app.randomization.models import Allocation
from app.reports.flow import (
    AWAITING_REVIEW,
    CONSENT_NOT_FINISHED,
    ConsortFlow,
    GroupFlow,
    TimepointFlow,
    applicant_box,
)
from app.studies import service as studies
from app.studies.definition import StudyDefinition, Timepoint
from app.studies.models import Site, Study
from app.studies.pseudonyms import group_codes
from app.surveys import scheduling
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus, Window
from app.surveys.service import timepoint_name


@dataclass(frozen=True)
class Group:
    code: str
    label: str
    arms: tuple[str, ...]  # the arms counted in it


POOLED = "all"


@dataclass(frozen=True)
class Groups:
    """How the caller sees the randomized: by arm, by blinded code, or pooled."""

    groups: list[Group]
    blind: bool  # the caller may not see arms

    def of(self, arm: str) -> str:
        return next(g.code for g in self.groups if arm in g.arms)


def groups_for(session: Session, *, study: Study, user: Principal) -> Groups:
    """The arms themselves for a role the study shows arms to; the blinded codes
    (`G1`...) for a blind role that never sees who a participant is (a statistician);
    one pooled group for a blind role that does (a coordinator), who could otherwise
    tie the person just randomized to the group whose count went up."""
    definition = studies.definition_of(study)
    arms = [a.code for a in definition.arms]
    mode = blinding.policy_for(user.role, definition).groups
    if mode is blinding.GroupMode.arms:
        return Groups([Group(a.code, a.label, (a.code,)) for a in definition.arms], blind=False)
    if mode is blinding.GroupMode.pooled:
        return Groups([Group(POOLED, "All randomized", tuple(arms))], blind=True)
    codes = group_codes(studies.blinding_key_of(session, study), arms)
    ordered = sorted(codes.items(), key=lambda item: int(item[1][1:]))
    return Groups([Group(code, code, (arm,)) for arm, code in ordered], blind=True)


def report_timepoints(definition: StudyDefinition, groups: Groups) -> list[Timepoint]:
    """Timepoints shown: for a blind caller, those of the blinded dataset, never one
    scheduled only for some arms (the policy's hidden timepoints)."""
    if not groups.blind:
        return list(definition.schedule)
    hidden = blinding.policy_for(blinding.BLIND, definition).hidden_timepoints
    return [t for t in exported_timepoints(definition) if t.code not in hidden]


def _sum(counts: Mapping[str, int], group: Group) -> int:
    return sum(counts.get(arm, 0) for arm in group.arms)


def _surveys(
    counts: Mapping[tuple[str, str], Counter[SurveyStatus]], group: Group, timepoint: str
) -> Counter[SurveyStatus]:
    total: Counter[SurveyStatus] = Counter()
    for arm in group.arms:
        total.update(counts.get((arm, timepoint), Counter()))
    return total


def consort(session: Session, *, study: Study, user: Principal) -> ConsortFlow:
    """Screened → ineligible (by reason) → enrolled → randomized → per group, with each
    timepoint's completed, missed and pending surveys."""
    definition = studies.definition_of(study)
    groups = groups_for(session, study=study, user=user)
    by_status = dict(
        session.execute(
            select(Participant.status, func.count())
            .where(Participant.study_id == study.id)
            .group_by(Participant.status)
        ).all()
    )
    reasons = _ineligible_reasons(session, study=study, definition=definition)
    withdrawn_early = session.scalar(
        select(func.count()).where(
            Participant.study_id == study.id,
            Participant.status == ParticipantStatus.withdrawn,
            Participant.randomized_at.is_(None),
        )
    )
    # Arms are sealed at rest: counted here, not grouped by the database.
    randomized: Counter[str] = Counter()
    left: defaultdict[str, Counter[str]] = defaultdict(Counter)  # kind → arm → people
    for arm, status, kind in session.execute(
        select(Allocation.arm, Participant.status, Participant.withdrawal_kind)
        .join(Participant, Participant.id == Allocation.participant_id)
        .where(Allocation.study_id == study.id)
        .execution_options(yield_per=1000)
    ):
        randomized[arm] += 1
        if kind is not None or status == ParticipantStatus.withdrawn:
            # A withdrawal recorded before kinds existed was a withdrawal from follow-up.
            left[kind or LeavingKind.follow_up][arm] += 1
    withdrawn = Counter(
        {arm: sum(left[k][arm] for k in LeavingKind if leaves_study(k)) for arm in randomized}
    )
    surveys = survey_counts(session, study=study, definition=definition)
    ineligible = by_status.get(ParticipantStatus.ineligible, 0)
    participants = sum(by_status.values())
    online = applicants(session, study=study)
    joined = session.scalar(
        select(func.count()).where(Participant.study_id == study.id, Participant.source == "join")
    )
    self_screened = (joined or 0) + online.total()
    group_flows = []
    for group in groups.groups:
        flows = []
        for t in report_timepoints(definition, groups):
            counted = _surveys(surveys, group, t.code)
            flows.append(
                TimepointFlow(
                    timepoint=t.code,
                    label=timepoint_name(t.code).removesuffix(" survey"),
                    completed=counted[SurveyStatus.completed],
                    missed=counted[SurveyStatus.missed],
                    pending=counted[SurveyStatus.scheduled] + counted[SurveyStatus.open],
                )
            )
        group_flows.append(
            GroupFlow(
                code=group.code,
                label=group.label,
                randomized=_sum(randomized, group),
                withdrawn=_sum(withdrawn, group),
                timepoints=flows,
                discontinued_intervention=_sum(left[LeavingKind.intervention], group),
                lost_to_follow_up=_sum(left[LeavingKind.lost], group),
                withdrew=_sum(left[LeavingKind.follow_up], group),
                withdrew_data=_sum(left[LeavingKind.data], group),
                died=_sum(left[LeavingKind.died], group),
            )
        )
    return ConsortFlow(
        study_title=study.title,
        screened=participants + online.total(),
        ineligible=ineligible,
        ineligible_by_reason=reasons,
        enrolled=participants - ineligible,
        withdrawn_before_randomization=withdrawn_early or 0,
        awaiting_randomization=by_status.get(ParticipantStatus.enrolled, 0),
        randomized=sum(randomized.values()),
        groups=group_flows,
        self_screened=self_screened,
        consent_not_finished=online[CONSENT_NOT_FINISHED],
        awaiting_review=online[AWAITING_REVIEW],
        online=definition.join.enabled or self_screened > 0,
    )


# Sign-ups that may still be counted: the others are participants (enrolled, or screened
# out), or were rejected.
_OPEN_STATES = (ApplicantState.contact, ApplicantState.consent, ApplicantState.held)


def applicants(session: Session, *, study: Study) -> Counter[str]:
    """Online sign-ups assessed but not participants, by CONSORT box (`flow.applicant_box`):
    no arm, no person, only counts."""
    counted: Counter[str] = Counter()
    for state, reasons, participant_id in session.execute(
        select(Applicant.state, Applicant.hold_reasons, Applicant.participant_id)
        .where(Applicant.study_id == study.id, Applicant.state.in_(_OPEN_STATES))
        .execution_options(yield_per=1000)
    ):
        box = applicant_box(str(state), reasons, participant=participant_id is not None)
        if box is not None:
            counted[box] += 1
    return counted


def _ineligible_reasons(
    session: Session, *, study: Study, definition: StudyDefinition
) -> dict[str, int]:
    texts = {c.code: c.exclusion_label() for c in definition.eligibility}
    counted: Counter[str] = Counter()
    lists = session.scalars(
        select(Participant.ineligible_reasons)
        .where(
            Participant.study_id == study.id,
            Participant.status == ParticipantStatus.ineligible,
        )
        .execution_options(yield_per=1000)
    )
    for reasons in lists:
        counted.update(texts.get(code, code) for code in reasons or ())
    order = {text: n for n, text in enumerate(texts.values())}
    return dict(sorted(counted.items(), key=lambda i: (order.get(i[0], len(order)), i[0])))


def survey_counts(
    session: Session,
    *,
    study: Study,
    definition: StudyDefinition,
    arm_of: Mapping[int, str] | None = None,
    pooled: str | None = None,
) -> defaultdict[tuple[str, str], Counter[SurveyStatus]]:
    """(arm, timepoint) → surveys of randomized participants by status, now.

    Arms are sealed at rest, so each participant's arm is opened once (unless the caller
    gives them: `arm_of`, participant id → arm, or any other group of theirs) and their
    surveys are grouped here; surveys with the same window and the same events so far
    have the same status, so the status rule (`status`) is applied once per group rather
    than once per survey. With `pooled`, every randomized participant is of that one
    group and no arm is read: the database groups the surveys."""
    zone, now = definition.zone(), utcnow()
    completed = case((SurveyInstance.completed_at <= now, True), else_=False)
    cancelled = case((SurveyInstance.cancelled_at <= now, True), else_=False)
    if pooled is not None:
        # One group for every randomized participant: the database groups the surveys.
        surveys = (
            select(
                SurveyInstance.timepoint,
                SurveyInstance.opens_on,
                SurveyInstance.closes_on,
                completed.label("done"),
                cancelled.label("gone"),
            )
            .join(Allocation, SurveyInstance.participant_id == Allocation.participant_id)
            .where(Allocation.study_id == study.id)
            .subquery()
        )
        c = surveys.c
        keys = (c.timepoint, c.opens_on, c.closes_on, c.done, c.gone)
        grouped = session.execute(select(*keys, func.count()).group_by(*keys))
        groups = Counter({(pooled, *line[:5]): line[5] for line in grouped})
        return _statuses(groups, now=now, zone=zone)
    if arm_of is None:
        arm_of = {
            participant_id: arm
            for participant_id, arm in session.execute(
                select(Allocation.participant_id, Allocation.arm).where(
                    Allocation.study_id == study.id
                )
            )
        }
    lines = session.execute(
        select(
            SurveyInstance.participant_id,
            SurveyInstance.timepoint,
            SurveyInstance.opens_on,
            SurveyInstance.closes_on,
            completed,
            cancelled,
        )
        .join(Allocation, SurveyInstance.participant_id == Allocation.participant_id)
        .where(Allocation.study_id == study.id)
        .execution_options(yield_per=1000)
    )
    groups = Counter((arm_of[line[0]], *line[1:]) for line in lines)
    return _statuses(groups, now=now, zone=zone)


def _statuses(
    groups: Counter[tuple[Any, ...]], *, now: datetime, zone: ZoneInfo
) -> defaultdict[tuple[str, str], Counter[SurveyStatus]]:
    """(group, timepoint) → surveys by status, from surveys counted by (group,
    timepoint, opens_on, closes_on, completed, cancelled)."""
    counts: defaultdict[tuple[str, str], Counter[SurveyStatus]] = defaultdict(Counter)
    for (arm, timepoint, opens_on, closes_on, was_completed, was_cancelled), n in groups.items():
        current = scheduling.status(
            Window(opens_on, closes_on),
            now=now,
            zone=zone,
            completed_at=now if was_completed else None,
            cancelled_at=now if was_cancelled else None,
        )
        counts[arm, timepoint][current] += n
    return counts


@dataclass(frozen=True)
class Retention:
    timepoint: str
    group: str
    completed: int
    missed: int
    pending: int
    cancelled: int

    @property
    def rate(self) -> float | None:
        """Completed among the surveys whose outcome is known (completed or missed)."""
        known = self.completed + self.missed
        return round(self.completed / known, 4) if known else None


def retention(session: Session, *, study: Study, user: Principal) -> list[Retention]:
    """Per timepoint and group: completed, missed, pending and cancelled surveys."""
    definition = studies.definition_of(study)
    groups = groups_for(session, study=study, user=user)
    counts = survey_counts(session, study=study, definition=definition)
    out = []
    for t in report_timepoints(definition, groups):
        for group in groups.groups:
            counted = _surveys(counts, group, t.code)
            out.append(
                Retention(
                    timepoint=t.code,
                    group=group.code,
                    completed=counted[SurveyStatus.completed],
                    missed=counted[SurveyStatus.missed],
                    pending=counted[SurveyStatus.scheduled] + counted[SurveyStatus.open],
                    cancelled=counted[SurveyStatus.cancelled],
                )
            )
    return out


@dataclass(frozen=True)
class Balance:
    factor: str  # `site`, or a stratification factor's code
    level: str
    counts: dict[str, int]  # group code → randomized participants


def balance(session: Session, *, study: Study, user: Principal) -> list[Balance]:
    """Randomized participants per level of each stratification factor (the site
    first, when the study stratifies by site), per group."""
    definition = studies.definition_of(study)
    groups = groups_for(session, study=study, user=user)
    tallies: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    lines = session.execute(
        select(Allocation.arm, Site.code, Participant.strata)
        .join(Participant, Participant.id == Allocation.participant_id)
        .join(Site, Site.id == Participant.site_id)
        .where(Allocation.study_id == study.id)
        .execution_options(yield_per=1000)
    )
    for arm, site, strata in lines:
        group = groups.of(arm)
        tallies["site", site][group] += 1
        for factor, level in (strata or {}).items():
            tallies[factor, level][group] += 1
    levels: list[tuple[str, str]] = []
    if definition.randomization.stratify_by_site:
        levels += [("site", s.code) for s in study.sites]
    levels += [(f.code, level) for f in definition.randomization.strata for level in f.levels]
    return [
        Balance(
            factor=factor,
            level=level,
            counts={g.code: tallies[factor, level][g.code] for g in groups.groups},
        )
        for factor, level in levels
    ]


@dataclass(frozen=True)
class SiteRecruitment:
    code: str
    name: str
    screened: int
    enrolled: int  # ever enrolled: enrolled now, randomized, or withdrawn after enrolling
    randomized: int  # ever randomized (withdrawn ones included: intention to treat)
    withdrawn: int
    target: int | None


def recruitment(session: Session, *, study: Study) -> list[SiteRecruitment]:
    """Per site: screened, enrolled, randomized and withdrawn, beside the site's target
    (aggregate counts: no arm, no participant)."""
    definition = studies.definition_of(study)
    targets = definition.recruitment.per_site if definition.recruitment else {}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    rows = session.execute(
        select(
            Participant.site_id,
            Participant.status,
            Participant.enrolled_at.is_not(None),
            Participant.randomized_at.is_not(None),
            func.count(),
        )
        .where(Participant.study_id == study.id)
        .group_by(
            Participant.site_id,
            Participant.status,
            Participant.enrolled_at.is_not(None),
            Participant.randomized_at.is_not(None),
        )
    )
    for site_id, status, enrolled, randomized, n in rows:
        tally = counts[site_id]
        tally["screened"] += n
        tally["enrolled"] += n if enrolled else 0
        tally["randomized"] += n if randomized else 0
        tally["withdrawn"] += n if status == ParticipantStatus.withdrawn else 0
    return [
        SiteRecruitment(
            site.code,
            site.name,
            counts[site.id]["screened"],
            counts[site.id]["enrolled"],
            counts[site.id]["randomized"],
            counts[site.id]["withdrawn"],
            targets.get(site.code),
        )
        for site in sorted(study.sites, key=lambda s: s.code)
    ]
