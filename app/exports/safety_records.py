"""The safety tables' records, read from the database as a stream: one query each,
events grouped with their versions, in the dataset's keyed participant order, in
constant memory (see `safety_tables` for what a row holds)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Row, case, cast, func, select
from sqlalchemy.orm import Session

from app.exports.dataset import Allocated, exported_timepoints
from app.exports.safety_tables import DeviationRecord, EventRecord, Record, SafetyTable
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.randomization.models import Allocation
from app.safety.deviation_rules import (
    DeviationState,
    DeviationVersion,
    DeviationVersionKind,
    fold_deviation,
)
from app.safety.events import Version, VersionKind, fold
from app.safety.models import (
    AdverseEvent,
    AdverseEventVersion,
    ProtocolDeviation,
    ProtocolDeviationVersion,
)
from app.studies.pseudonyms import pseudonym
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date

if TYPE_CHECKING:
    from app.exports.reading import Export

YIELD_PER = 500
# The source of a deviation the system proposed for a survey done after its window
# (`ProtocolDeviation.source`): the survey's id follows.
OUTSIDE_WINDOW_SOURCE = "outside_window:survey:"


def records(session: Session, export: Export) -> Iterator[Record]:
    """The rows' records of the export's safety table, in order."""
    if export.table is SafetyTable.adverse_events:
        return _events(session, export)
    return _deviations(session, export)


def _participant_values(export: Export, line: Row[Any]) -> dict[str, Any]:
    zone = export.definition.zone()
    allocation = None
    if export.kind == "unblinded" and line.arm is not None:
        labels = {a.code: a.label for a in export.definition.arms}
        allocation = Allocated(
            arm=line.arm,
            arm_label=labels.get(line.arm, line.arm),
            stratum="",
            block=None,
            block_size=None,
            position=None,
        )
    return {
        "pseudonym": pseudonym(export.blinding_key, line.code),
        "group": export.groups.get(line.arm) if line.arm is not None else None,
        "randomized_on": local_date(line.randomized_at, zone) if line.randomized_at else None,
        "allocation": allocation,
    }


def _of_enrolled(export: Export) -> Any:
    # The participants of the dataset (ineligible screenings are in no file), so each
    # row's pseudonym is one of the participants file's (the package's foreign key).
    return (
        Participant.study_id == export.study_id,
        Participant.status != ParticipantStatus.ineligible,
    )


def _events(session: Session, export: Export) -> Iterator[EventRecord]:
    query = (
        select(
            AdverseEvent.id,
            AdverseEvent.number,
            Participant.code,
            Participant.randomized_at,
            Allocation.arm,
            AdverseEventVersion.number.label("version"),
            AdverseEventVersion.kind,
            AdverseEventVersion.fields,
        )
        .join(Participant, Participant.id == AdverseEvent.participant_id)
        .join(AdverseEventVersion, AdverseEventVersion.event_id == AdverseEvent.id)
        .outerjoin(Allocation, Allocation.participant_id == Participant.id)
        .where(AdverseEvent.study_id == export.study_id, *_of_enrolled(export))
        .order_by(
            Participant.export_order,
            Participant.id,
            AdverseEvent.number,
            AdverseEventVersion.number,
        )
        .execution_options(yield_per=YIELD_PER)
    )
    result = session.connection().execute(query)
    for _, group in groupby(result, key=lambda r: r.id):
        lines = list(group)
        state = fold(
            Version(number=line.version, kind=VersionKind(line.kind), fields=line.fields or {})
            for line in lines
        )
        yield EventRecord(
            number=lines[0].number, state=state, **_participant_values(export, lines[0])
        )
    result.close()


def _deviations(session: Session, export: Export) -> Iterator[DeviationRecord]:
    prefix = len(OUTSIDE_WINDOW_SOURCE)
    # The survey a system-found "outside its window" deviation is about, by its id (a
    # join on the survey's primary key, the only index there is).
    survey_id = case(
        (
            ProtocolDeviation.source.like(OUTSIDE_WINDOW_SOURCE + "%"),
            cast(func.substr(ProtocolDeviation.source, prefix + 1), Integer),
        ),
        else_=None,
    )
    query = (
        select(
            ProtocolDeviation.id,
            ProtocolDeviation.number,
            ProtocolDeviation.source,
            Participant.code,
            Participant.randomized_at,
            Allocation.arm,
            SurveyInstance.timepoint,
            ProtocolDeviationVersion.number.label("version"),
            ProtocolDeviationVersion.kind,
            ProtocolDeviationVersion.fields,
        )
        .join(Participant, Participant.id == ProtocolDeviation.participant_id)
        .join(
            ProtocolDeviationVersion,
            ProtocolDeviationVersion.deviation_id == ProtocolDeviation.id,
        )
        .outerjoin(Allocation, Allocation.participant_id == Participant.id)
        .outerjoin(SurveyInstance, SurveyInstance.id == survey_id)
        .where(
            ProtocolDeviation.study_id == export.study_id,
            ProtocolDeviation.state == DeviationState.confirmed,
            *_of_enrolled(export),
        )
        .order_by(
            Participant.export_order,
            Participant.id,
            ProtocolDeviation.number,
            ProtocolDeviationVersion.number,
        )
        .execution_options(yield_per=YIELD_PER)
    )
    # A timepoint of arm-limited instruments only is scheduled for those arms alone: a
    # deviation about one of its surveys would tell those arms apart (SPEC 8, as the
    # dataset leaves such timepoints out).
    hidden = (
        set()
        if export.kind == "unblinded"
        else {t.code for t in export.definition.schedule}
        - {t.code for t in exported_timepoints(export.definition)}
    )
    result = session.connection().execute(query)
    for _, group in groupby(result, key=lambda r: r.id):
        lines = list(group)
        first = lines[0]
        if first.timepoint is not None and first.timepoint in hidden:
            continue
        view = fold_deviation(
            DeviationVersion(
                number=line.version,
                kind=DeviationVersionKind(line.kind),
                fields=line.fields or {},
            )
            for line in lines
        )
        if view.state is not DeviationState.confirmed:
            continue
        yield DeviationRecord(
            number=first.number,
            fields=view.fields,
            proposed_by_system=first.source is not None,
            **_participant_values(export, first),
        )
    result.close()
