"""What an export is of (`Export`, decided before its first byte) and its records, read
from the database as a stream: one query, grouped by participant, in constant memory."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from itertools import groupby
from typing import Any

from sqlalchemy import Row, false, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.exports import participant_file, safety_records, safety_tables
from app.exports.dataset import (
    Allocated,
    Column,
    ParticipantRecord,
    RowMaker,
    Shape,
    SurveyRecord,
    columns,
)
from app.exports.labels import WITHHELD
from app.exports.safety_tables import SafetyTable
from app.participants.leaving import answers_usable
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.randomization.models import Allocation, Stratum
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.studies.models import Site, Study
from app.studies.pseudonyms import group_codes, pseudonym
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import SurveyStatus, local_date, status_of

YIELD_PER = 500


class Format(StrEnum):
    csv = "csv"
    json = "json"
    dta = "dta"  # Stata 15 and later
    sav = "sav"  # SPSS


class TextFormat(StrEnum):
    csv = "csv"
    json = "json"


class Kind(StrEnum):
    blinded = "blinded"
    unblinded = "unblinded"


PARTICIPANTS = "participants"  # the participant-level file, in place of a shape


def dated_name(slug: str, what: str, ext: str, *, on: date) -> str:
    """The name of every download: `{slug}-{what}-{on}.{ext}`, e.g.
    `peer-support-blinded-long-2026-12-07.csv` (`on`: today in the study's time zone)."""
    return f"{slug}-{what}-{on.isoformat()}.{ext}"


@dataclass(frozen=True)
class Export:
    """What an export is of, decided (and audited) before its first byte is sent."""

    study_id: int
    slug: str
    title: str
    definition: StudyDefinition
    kind: Kind
    shape: Shape
    columns: list[Column]
    groups: dict[str, str]  # arm → group code
    now: datetime
    # The study's blinding key: pseudonyms are computed, never stored beside codes.
    blinding_key: bytes = field(repr=False, default=b"")
    id: str = field(default_factory=lambda: secrets.token_hex(8))  # pairs its audit records
    participants: bool = False  # the participant-level file (one row each, no surveys)
    table: SafetyTable | None = None  # a safety table (one row per event or deviation)

    @property
    def what(self) -> str:
        """`blinded-long`, `unblinded-wide`, `blinded-participants`,
        `blinded-adverse_events`..."""
        if self.table is not None:
            return f"{self.kind}-{self.table}"
        return f"{self.kind}-{PARTICIPANTS if self.participants else self.shape}"

    def file_name(self, ext: str) -> str:
        """The download's dated name."""
        today = local_date(self.now, self.definition.zone())
        return dated_name(self.slug, self.what, ext, on=today)


def prepare(
    session: Session,
    *,
    study: Study,
    kind: Kind,
    shape: Shape,
    participants: bool = False,
    table: SafetyTable | None = None,
) -> Export:
    """Decide the export's columns, pseudonym key and group codes."""
    definition = studies.definition_of(study)
    key = studies.blinding_key_of(session, study)
    unblinded = kind is Kind.unblinded
    if table is not None:
        cols = safety_tables.columns(definition, table, unblinded=unblinded)
    elif participants:
        cols = participant_file.columns(definition)
    else:
        cols = columns(definition, shape=shape, unblinded=unblinded)
    return Export(
        study_id=study.id,
        slug=study.slug,
        title=study.title,
        definition=definition,
        kind=kind,
        shape=shape,
        columns=cols,
        groups=group_codes(key, [a.code for a in definition.arms]),
        now=audit.lock_chain_head(session).at,
        blinding_key=key,
        participants=participants,
        table=table,
    )


def safety_export(export: Export, table: SafetyTable) -> Export:
    """A safety table of the same kind, key, groups and time as `export` (the data
    package's, audited as that one export)."""
    cols = safety_tables.columns(export.definition, table, unblinded=export.kind is Kind.unblinded)
    return replace(export, columns=cols, table=table, participants=False)


def _enrolled(export: Export) -> Any:
    return (
        Participant.study_id == export.study_id,
        Participant.status != ParticipantStatus.ineligible,
    )


def records(session: Session, export: Export) -> Iterator[ParticipantRecord]:
    """Every enrolled participant of the study (withdrawn ones too), in order, with their
    surveys; read by one streaming query."""
    unblinded = export.kind is Kind.unblinded
    arm_labels = {a.code: a.label for a in export.definition.arms}
    zone = export.definition.zone()
    first_at = session.scalar(select(func.min(Participant.randomized_at)).where(*_enrolled(export)))
    first_on = local_date(first_at, zone) if first_at is not None else None
    query = (
        select(
            Participant.id,
            Participant.code,
            Participant.strata,
            Participant.randomized_at,
            Participant.status,
            Participant.withdrawal_kind,
            Participant.withdrawal_category,
            Participant.withdrawn_on,
            Participant.intervention_stopped_on,
            Participant.source,
            Site.code.label("site"),
            Allocation.arm,
            Stratum.key.label("stratum"),
            Allocation.block,
            Allocation.block_size,
            Allocation.position,
            SurveyInstance.timepoint,
            SurveyInstance.opens_on,
            SurveyInstance.closes_on,
            SurveyInstance.completed_at,
            SurveyInstance.cancelled_at,
            SurveyInstance.answers,
            SurveyInstance.scores,
            SurveyInstance.mode,
            SurveyInstance.interviewed_on,
            SurveyInstance.language,
            SurveyInstance.missed_reason,
        )
        .join(Site, Site.id == Participant.site_id)
        .outerjoin(Allocation, Allocation.participant_id == Participant.id)
        .outerjoin(Stratum, Stratum.id == Allocation.stratum_id)
        .where(*_enrolled(export))
        # By a keyed hash of the code: the order of enrollment would give codes and
        # allocations away (studies.pseudonyms.export_order).
        .order_by(Participant.export_order, Participant.id, SurveyInstance.id)
        .execution_options(yield_per=YIELD_PER)
    )
    if export.participants:  # no survey in it: one line per participant
        query = query.outerjoin(SurveyInstance, false())
    else:
        query = query.outerjoin(SurveyInstance, SurveyInstance.participant_id == Participant.id)
    result = session.connection().execute(query)  # rows, not entities: no ORM work
    for _, group in groupby(result, key=lambda r: r.id):
        lines = list(group)
        first = lines[0]
        randomized_on = local_date(first.randomized_at, zone) if first.randomized_at else None
        surveys = {
            line.timepoint: _usable(_survey(line, export.now, zone), first)
            for line in lines
            if line.timepoint is not None
        }
        allocation = None
        if unblinded and first.arm is not None:
            allocation = Allocated(
                arm=first.arm,
                arm_label=arm_labels.get(first.arm, first.arm),
                stratum=first.stratum,
                block=first.block,
                block_size=first.block_size,
                position=first.position,
            )
        yield ParticipantRecord(
            pseudonym=pseudonym(export.blinding_key, first.code),
            group=export.groups.get(first.arm) if first.arm is not None else None,
            site=first.site,
            strata=first.strata or {},
            randomized_on=randomized_on,
            surveys=surveys,
            allocation=allocation,
            status=str(first.status),
            withdrawal_kind=first.withdrawal_kind,
            withdrawal_category=first.withdrawal_category,
            withdrawn_on=first.withdrawn_on,
            intervention_stopped_on=first.intervention_stopped_on,
            first_randomization_on=first_on,
            source=first.source or "staff",
        )
    result.close()


def _survey(line: Row[Any], now: datetime, zone: Any) -> SurveyRecord:
    state = status_of(line, now=now, zone=zone)
    completed_on: date | None = local_date(line.completed_at, zone) if line.completed_at else None
    return SurveyRecord(
        status=state.value,
        completed_on=completed_on,
        answers=line.answers or {},
        scores=line.scores or {},
        mode=line.mode if completed_on is not None else None,
        interviewed_on=line.interviewed_on,
        # Kept from the first save; said only of a completed survey, like its mode.
        language=line.language if completed_on is not None else None,
        # Said only of a survey that is missed (a late entry by staff completes it).
        missed_reason=line.missed_reason if state is SurveyStatus.missed else None,
    )


def _usable(survey: SurveyRecord, participant: Row[Any]) -> SurveyRecord:
    """The survey as the export may carry it: answered on or after a withdrawal of consent
    to the use of data, its answers are withheld (`leaving.answers_usable`), and it reads
    as `withheld`, a survey not given."""
    on = survey.dated_on
    if on is None or answers_usable(participant.withdrawal_kind, participant.withdrawn_on, on):
        return survey
    return SurveyRecord(status=WITHHELD, completed_on=None, answers={}, scores={})


def dataset_rows(
    session: Session, export: Export, progress: Callable[[int], None] | None = None
) -> Iterator[list[Any]]:
    """Every row of the export, in order; `progress(1)` after each participant (after
    each event or deviation in a safety table)."""
    if export.table is not None:
        for safety_record in safety_records.records(session, export):
            yield safety_tables.row(safety_record, export.columns)
            if progress is not None:
                progress(1)
        return
    make = (
        (lambda r: participant_file.rows(r, export.columns))
        if export.participants
        else RowMaker(export.columns, export.definition, export.shape)
    )
    for record in records(session, export):
        yield from make(record)
        if progress is not None:
            progress(1)


def count_participants(session: Session, export: Export) -> int:
    """How many participants the export will hold (for a progress bar)."""
    return session.scalar(select(func.count()).where(*_enrolled(export))) or 0
