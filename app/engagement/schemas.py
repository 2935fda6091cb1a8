"""Engagement API schemas: what a load answers, and each participant's use (for roles the
study shows arms to only: every field here may tell the arm)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.engagement.service import ImportResult
from app.engagement.usage import Summary


class RejectedRow(BaseModel):
    line: int = Field(description="the line of the file (1: its first)")
    problem: str


class ImportAnswer(BaseModel):
    accepted: int = Field(description="events stored by this load")
    duplicates: int = Field(description="events whose event_id the study already had")
    rejected: list[RejectedRow] = Field(description="rows refused, by line (the first 1,000)")
    rejected_count: int = Field(description="every row refused, listed or not")
    lines: int = Field(description="lines read")
    sha256: str = Field(description="SHA-256 of the file (audited with the counts)")

    @classmethod
    def of(cls, result: ImportResult) -> ImportAnswer:
        return cls(
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=[RejectedRow(line=r.line, problem=r.problem) for r in result.rejected],
            rejected_count=result.rejected_count,
            lines=result.lines,
            sha256=result.sha256,
        )


class SummaryRead(BaseModel):
    pseudonym: str = Field(description="as in the study's exports")
    arm: str
    active_weeks: int = Field(description="weeks of follow-up (from randomization) with use")
    posts: int = Field(description="events of kind post or reply")
    logins: int
    events: int = Field(description="every event counted (each one's count)")
    first_use: datetime | None
    last_use: datetime | None
    by_kind: dict[str, int] = Field(description="events by kind")


class SummaryList(BaseModel):
    items: list[SummaryRead]


def summary_reads(summaries: list[Summary], pseudonyms: dict[str, str]) -> SummaryList:
    """The summaries as the API answers them (`pseudonyms`: code → pseudonym)."""
    return SummaryList(
        items=[
            SummaryRead(
                pseudonym=pseudonyms[s.code],
                arm=s.arm,
                active_weeks=s.active_weeks,
                posts=s.posts,
                logins=s.logins,
                events=s.events,
                first_use=s.first_use,
                last_use=s.last_use,
                by_kind=dict(sorted(s.by_kind.items())),
            )
            for s in summaries
        ]
    )
