"""The answers of the report routes."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from app.reports.dsmb import DsmbReport
from app.reports.flow import ConsortFlow
from app.reports.missed import MissedReasons
from app.reports.service import Balance, Retention


class TimepointCounts(BaseModel):
    timepoint: str
    completed: int
    missed: int
    pending: int = Field(description="scheduled or open")


class GroupCounts(BaseModel):
    group: str = Field(description="the arm, or its blinded code (G1...) for blind roles")
    label: str
    randomized: int
    withdrawn: int = Field(
        description="left the study after randomization (lost, withdrew, withdrew the use "
        "of their data, died); not those who only discontinued the intervention"
    )
    discontinued_intervention: int = Field(
        description="stopped the intervention and are still followed and analysed (ITT)"
    )
    lost_to_follow_up: int
    withdrew: int = Field(description="withdrew from follow-up")
    withdrew_data: int = Field(description="withdrew consent to the use of their data")
    died: int
    timepoints: list[TimepointCounts]


class ConsortReport(BaseModel):
    screened: int = Field(
        description="assessed for eligibility: participants (ineligible ones included) and "
        "online sign-ups that are not participants yet (consent_not_finished, "
        "awaiting_review); never sign-ups rejected by a coordinator or showing a robot's signs"
    )
    self_screened: int = Field(description="of `screened`: those who screened themselves online")
    excluded: int = Field(
        description="ineligible + withdrawn_before_randomization + consent_not_finished + "
        "awaiting_review (screened = excluded + awaiting_randomization + randomized)"
    )
    ineligible: int
    ineligible_by_reason: dict[str, int]
    consent_not_finished: int = Field(
        description="eligible online sign-ups that have not signed the consent (yet)"
    )
    awaiting_review: int = Field(
        description="online sign-ups that signed and are held for a coordinator's review"
    )
    enrolled: int
    withdrawn_before_randomization: int
    awaiting_randomization: int
    randomized: int
    groups: list[GroupCounts]


def consort_report(flow: ConsortFlow) -> ConsortReport:
    return ConsortReport(
        screened=flow.screened,
        self_screened=flow.self_screened,
        excluded=flow.excluded,
        ineligible=flow.ineligible,
        ineligible_by_reason=flow.ineligible_by_reason,
        consent_not_finished=flow.consent_not_finished,
        awaiting_review=flow.awaiting_review,
        enrolled=flow.enrolled,
        withdrawn_before_randomization=flow.withdrawn_before_randomization,
        awaiting_randomization=flow.awaiting_randomization,
        randomized=flow.randomized,
        groups=[
            GroupCounts(
                group=g.code,
                label=g.label,
                randomized=g.randomized,
                withdrawn=g.withdrawn,
                discontinued_intervention=g.discontinued_intervention,
                lost_to_follow_up=g.lost_to_follow_up,
                withdrew=g.withdrew,
                withdrew_data=g.withdrew_data,
                died=g.died,
                timepoints=[
                    TimepointCounts(
                        timepoint=t.timepoint,
                        completed=t.completed,
                        missed=t.missed,
                        pending=t.pending,
                    )
                    for t in g.timepoints
                ],
            )
            for g in flow.groups
        ],
    )


class RetentionRow(BaseModel):
    timepoint: str
    group: str
    completed: int
    missed: int
    pending: int
    cancelled: int
    rate: float | None = Field(description="completed / (completed + missed)")


class MissedReasonRow(BaseModel):
    timepoint: str
    counts: dict[str, int] = Field(
        description="missed surveys by the reason staff gave (unreachable, declined, "
        "too_unwell, other), and `not_given`; randomized participants, every group together"
    )


class RetentionReport(BaseModel):
    items: list[RetentionRow]
    missed_reasons: list[MissedReasonRow] = Field(default_factory=list)


def retention_report(
    rows: list[Retention], missed: list[MissedReasons] | None = None
) -> RetentionReport:
    return RetentionReport(
        items=[RetentionRow.model_validate(r, from_attributes=True) for r in rows],
        missed_reasons=[
            MissedReasonRow(timepoint=m.timepoint, counts=m.counts) for m in missed or []
        ],
    )


class BalanceRow(BaseModel):
    factor: str
    level: str
    counts: dict[str, int] = Field(description="group → randomized participants")


class BalanceReport(BaseModel):
    items: list[BalanceRow]


def balance_report(rows: list[Balance]) -> BalanceReport:
    return BalanceReport(items=[BalanceRow.model_validate(r, from_attributes=True) for r in rows])


class DsmbColumn(BaseModel):
    code: str = Field(description="a group letter (closed part), `not_randomized`, `total`")
    label: str


class DsmbRow(BaseModel):
    label: str
    counts: dict[str, int | float] = Field(
        description="column code → count (a median, quartile or percentage in the closed "
        "part's use of the intervention)"
    )


class DsmbTable(BaseModel):
    code: str
    title: str
    columns: list[DsmbColumn]
    rows: list[DsmbRow]
    note: str | None


class DsmbSection(BaseModel):
    code: str
    title: str
    tables: list[DsmbTable]


class DsmbGroupKey(BaseModel):
    letter: str
    arm: str
    label: str


class DsmbReportOut(BaseModel):
    part: str = Field(description="open (pooled) or closed (by group, coded with letters)")
    study_title: str
    study_slug: str
    time_zone: str
    generated_at: datetime
    generated_on: date = Field(description="in the study's time zone")
    activated_on: date | None
    locked_on: date | None
    sections: list[DsmbSection]
    key: list[DsmbGroupKey] = Field(description="closed part: the key to the group letters")


def dsmb_report_out(report: DsmbReport) -> DsmbReportOut:
    return DsmbReportOut.model_validate(report, from_attributes=True)
