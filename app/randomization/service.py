"""Taking the next slot of a stratum (one transaction, under a lock), unblinding, verify."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.models import AuditRecord
from app.auth.models import User
from app.auth.principal import Principal
from app.errors import (
    AllocationTableExhausted,
    AllocationTableNotUsed,
    AlreadyRandomized,
    FieldProblem,
    InvalidAllocationTable,
    InvalidInput,
    NotEnrolled,
    NotRandomized,
    StudyNotDraft,
    StudyNotEnrolling,
)
from app.participants.models import Participant, ParticipantStatus
from app.participants.service import get_participant
from app.randomization.blocks import ArmRatio, commitment, next_slot, sequence
from app.randomization.models import Allocation, AllocationTableRow, Stratum
from app.randomization.schemas import SimulationRequest
from app.randomization.simulation import SimulationResult, simulate
from app.randomization.strata import UNSTRATIFIED
from app.randomization.table import TableRow, parse_table, table_digest
from app.studies.definition import block_size_problems
from app.studies.models import Study, StudyStatus
from app.studies.schemas import StudyDefinition
from app.studies.service import definition_of


def arm_ratios(definition: StudyDefinition) -> list[ArmRatio]:
    return [ArmRatio(code=a.code, ratio=a.ratio) for a in definition.arms]


def arm_label(definition: StudyDefinition, code: str) -> str:
    return next(a.label for a in definition.arms if a.code == code)


def randomize(
    session: Session, *, study: Study, code: str, actor: Principal, now: datetime
) -> tuple[Participant, Allocation]:
    """Give the participant the next slot of their stratum and mark them randomized.

    Both happen in the caller's transaction. The participant's row, then the
    stratum's row, are locked (SQLite: the whole database, from BEGIN IMMEDIATE), and
    unique constraints on (stratum, sequence) and on the participant back this up: no
    two participants can get one slot, no slot is skipped, nobody is randomized twice.
    """
    participant = get_participant(session, study=study, code=code, user=actor, lock=True)
    if participant.was_randomized:
        raise AlreadyRandomized(f"{code} is already randomized")
    if participant.status != ParticipantStatus.enrolled:
        raise NotEnrolled(f"{code} is {participant.status}, not enrolled")
    if study.status != StudyStatus.enrolling:
        raise StudyNotEnrolling(f"the study is {study.status}")
    assert participant.stratum is not None
    definition = definition_of(study)
    stratum = _lock_stratum(session, study_id=study.id, key=participant.stratum)
    slot = _take_slot(session, study=study, definition=definition, stratum=stratum)
    allocation = Allocation(
        study_id=study.id,
        stratum_id=stratum.id,
        participant_id=participant.id,
        sequence=stratum.allocated + 1,
        block=slot.block,
        block_size=slot.block_size,
        position=slot.position,
        arm=slot.arm,
        randomized_by=actor.id,
        randomized_at=now,
    )
    stratum.allocated += 1
    if slot.block is not None and slot.block_size is not None and slot.position is not None:
        stratum.last_block, stratum.last_block_size = slot.block, slot.block_size
        stratum.last_position = slot.position
    participant.status = ParticipantStatus.randomized
    participant.randomized_at = now
    session.add(allocation)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="participant.randomized",
        entity_type="participant",
        entity_id=participant.code,
        study_id=study.id,
        now=now,
        # The arm stays out of the trail: it is read by roles that may be blind.
        changes={
            "status": audit.change(ParticipantStatus.enrolled.value, participant.status.value),
            "stratum": audit.change(None, stratum.key),
            "sequence": audit.change(None, allocation.sequence),
            "block": audit.change(None, allocation.block),
            "position": audit.change(None, allocation.position),
        },
    )
    return participant, allocation


def _lock_stratum(session: Session, *, study_id: int, key: str) -> Stratum:
    """The stratum's row, created on first use, locked until the transaction ends."""
    dialect = session.get_bind().dialect.name
    params = {"study_id": study_id, "key": key}
    session.execute(_CREATE_STRATUM[dialect], params)
    return session.scalars(_SELECT_STRATUM_FOR_UPDATE, params).one()


def _create_stratum_statement(insert: Any) -> Any:
    return (
        insert(Stratum.__table__)
        .values(
            study_id=bindparam("study_id"),
            key=bindparam("key"),
            allocated=0,
            last_block=0,
            last_block_size=0,
            last_position=0,
        )
        .on_conflict_do_nothing(index_elements=["study_id", "key"])
    )


# Built once (randomization is the hot path); ON CONFLICT makes creation race-free.
_CREATE_STRATUM = {
    "postgresql": _create_stratum_statement(postgresql.insert),
    "sqlite": _create_stratum_statement(sqlite.insert),
}
_SELECT_STRATUM_FOR_UPDATE = (
    select(Stratum)
    .where(Stratum.study_id == bindparam("study_id"), Stratum.key == bindparam("key"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


@dataclass(frozen=True)
class Taken:
    """The slot given: from the block rule, or from a table that may give no blocks."""

    block: int | None
    block_size: int | None
    position: int | None
    arm: str


def _take_slot(
    session: Session, *, study: Study, definition: StudyDefinition, stratum: Stratum
) -> Taken:
    if definition.randomization.method == "table":
        row = session.scalars(
            select(AllocationTableRow).where(
                AllocationTableRow.study_id == study.id,
                AllocationTableRow.stratum == stratum.key,
                AllocationTableRow.sequence == stratum.allocated + 1,
            )
        ).first()
        if row is None:
            raise AllocationTableExhausted(f"no row {stratum.allocated + 1} for {stratum.key}")
        return Taken(row.block, row.block_size, row.position, row.arm)
    slot = next_slot(
        secret=study.secret,
        stratum=stratum.key,
        last_block=stratum.last_block,
        last_block_size=stratum.last_block_size,
        last_position=stratum.last_position,
        sizes=definition.randomization.block_sizes,
        arms=arm_ratios(definition),
    )
    return Taken(slot.block, slot.block_size, slot.position, slot.arm)


MAX_SIMULATED_ALLOCATIONS = 1_000_000


def simulate_study(*, study: Study, request: SimulationRequest) -> SimulationResult:
    """Simulate enrollment into the study with throw-away secrets (its own is not used)."""
    definition = definition_of(study)
    r = definition.randomization
    problems: list[FieldProblem] = []
    if request.participants * request.runs > MAX_SIMULATED_ALLOCATIONS:
        problems.append(
            FieldProblem(
                ("runs",), f"participants x runs may be {MAX_SIMULATED_ALLOCATIONS} at most"
            )
        )
    sizes = request.block_sizes or r.block_sizes
    if not sizes:
        problems.append(FieldProblem(("block_sizes",), "the study has none: give block sizes"))
    problems += block_size_problems(("block_sizes",), request.block_sizes or [], definition)
    shares: list[dict[str, float]] = []
    if r.stratify_by_site:
        sites = request.site_proportions or {s.code: 1.0 for s in study.sites}
        known = {s.code for s in study.sites}
        for code in sites:
            if code not in known:
                problems.append(FieldProblem(("site_proportions", code), "no such site"))
        if not sites:
            problems.append(
                FieldProblem(("site_proportions",), "the study has no sites yet: give proportions")
            )
        shares.append({f"site={code}": share for code, share in sites.items()})
    given = request.strata_proportions or {}
    factors = {f.code: f for f in r.strata}
    for code, levels in given.items():
        if code not in factors:
            problems.append(FieldProblem(("strata_proportions", code), "not a factor"))
            continue
        for level in levels:
            if level not in factors[code].levels:
                problems.append(FieldProblem(("strata_proportions", code, level), "not a level"))
    for factor in r.strata:
        levels = given.get(factor.code) or {level: 1.0 for level in factor.levels}
        shares.append({f"{factor.code}={level}": share for level, share in levels.items()})
    if problems:
        raise InvalidInput(problems)
    strata: dict[str, float] = {"": 1.0}
    for part in shares:
        strata = {
            f"{key}|{k}" if key else k: share * s
            for key, share in strata.items()
            for k, s in part.items()
        }
    if strata == {"": 1.0}:
        strata = {UNSTRATIFIED: 1.0}
    return simulate(
        arms=arm_ratios(definition),
        block_sizes=sizes,
        strata=strata,
        participants=request.participants,
        runs=request.runs,
        seed=request.seed,
    )


def allocation_of(session: Session, *, participant: Participant) -> Allocation | None:
    """The participant's allocation, if randomized."""
    return session.scalars(
        select(Allocation).where(Allocation.participant_id == participant.id)
    ).first()


def unblind(
    session: Session, *, study: Study, code: str, reason: str, actor: Principal, now: datetime
) -> tuple[Participant, Allocation]:
    """Reveal one participant's arm, for a recorded reason."""
    participant = get_participant(session, study=study, code=code, user=actor)
    allocation = allocation_of(session, participant=participant)
    if allocation is None:
        raise NotRandomized(f"{code} has no allocation")
    audit.record(
        session,
        actor=actor,
        action="participant.unblinded",
        entity_type="participant",
        entity_id=participant.code,
        study_id=study.id,
        now=now,
        reason=reason,
        changes={},
    )
    return participant, allocation


def list_allocations(
    session: Session, *, study: Study, after_id: int, limit: int
) -> Sequence[tuple[Allocation, str, str]]:
    """Allocations in the order they were made, with participant code and actor email."""
    rows = session.execute(
        select(Allocation, Participant.code, User.email)
        .join(Participant, Participant.id == Allocation.participant_id)
        .join(User, User.id == Allocation.randomized_by)
        .where(Allocation.study_id == study.id, Allocation.id > after_id)
        .order_by(Allocation.id)
        .limit(limit)
    ).all()
    return [(row[0], row[1], row[2]) for row in rows]


@dataclass(frozen=True)
class Finding:
    """One way in which a study's allocations do not hold."""

    where: str
    problem: str


def verify_allocations(session: Session, *, study: Study) -> list[Finding]:
    """Re-derive every allocation from the secret (or the table) and compare."""
    definition = definition_of(study)
    findings: list[Finding] = []
    if study.commitment is not None and (
        commitment(secret=study.secret, slug=study.slug) != study.commitment
    ):
        findings.append(Finding("study", "the secret does not match the published commitment"))
    table: dict[tuple[str, int], Taken] | None = None
    if definition.randomization.method == "table":
        table, problem = _checked_table(session, study=study)
        if problem:
            findings.append(Finding("allocation table", problem))
    participants = {
        p.id: p
        for p in session.scalars(select(Participant).where(Participant.study_id == study.id))
    }
    allocated_ids: set[int] = set()
    strata = session.scalars(select(Stratum).where(Stratum.study_id == study.id)).all()
    for stratum in strata:
        rows = session.scalars(
            select(Allocation)
            .where(Allocation.stratum_id == stratum.id)
            .order_by(Allocation.sequence)
        ).all()
        expected: list[Taken | None]
        if table is None:
            expected = [
                Taken(s.block, s.block_size, s.position, s.arm)
                for s in sequence(
                    secret=study.secret,
                    stratum=stratum.key,
                    count=len(rows),
                    sizes=definition.randomization.block_sizes,
                    arms=arm_ratios(definition),
                )
            ]
        else:
            expected = [table.get((stratum.key, i + 1)) for i in range(len(rows))]
        for index, (row, slot) in enumerate(zip(rows, expected, strict=True)):
            where = f"{stratum.key} #{index + 1}"
            if row.sequence != index + 1:
                findings.append(Finding(where, f"sequence {row.sequence}: a slot is missing"))
            if slot is None:
                findings.append(Finding(where, "not in the allocation table"))
            elif Taken(row.block, row.block_size, row.position, row.arm) != slot:
                findings.append(Finding(where, "does not match the re-derived sequence"))
            participant = participants.get(row.participant_id)
            if participant is None or participant.stratum != stratum.key:
                findings.append(Finding(where, "the participant is not of this stratum"))
            allocated_ids.add(row.participant_id)
        if stratum.allocated != len(rows):
            findings.append(
                Finding(stratum.key, f"counter says {stratum.allocated}, ledger has {len(rows)}")
            )
    for p in participants.values():
        if p.was_randomized != (p.id in allocated_ids):
            findings.append(Finding(p.code, "status and allocation ledger disagree"))
    return findings


def _checked_table(
    session: Session, *, study: Study
) -> tuple[dict[tuple[str, int], Taken], str | None]:
    """The stored table, and a problem if it is not the table the audit trail recorded."""
    rows = [
        TableRow(r.stratum, r.sequence, r.arm, r.block, r.block_size, r.position)
        for r in session.scalars(
            select(AllocationTableRow).where(AllocationTableRow.study_id == study.id)
        )
    ]
    recorded = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.study_id == study.id, AuditRecord.action == TABLE_LOADED)
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    ).first()
    problem = None
    if recorded is None:
        problem = "no allocation table was ever loaded"
    elif recorded.changes.get("sha256", {}).get("new") != table_digest(rows):
        problem = "the stored table differs from the one recorded in the audit trail"
    table = {(r.stratum, r.sequence): Taken(r.block, r.block_size, r.position, r.arm) for r in rows}
    return table, problem


TABLE_LOADED = "study.allocation_table_loaded"


def load_allocation_table(
    session: Session, *, study: Study, text: str, actor: Principal, now: datetime
) -> tuple[int, int, str]:
    """Replace a draft study's allocation table; return rows, strata and the digest."""
    definition = definition_of(study)
    if definition.randomization.method != "table":
        raise AllocationTableNotUsed("the study's randomization method is blocks")
    if study.status != StudyStatus.draft:
        raise StudyNotDraft("the allocation table is fixed once the study is enrolling")
    rows, problems = parse_table(
        text,
        arms=[a.code for a in definition.arms],
        factors=[(f.code, f.levels) for f in definition.randomization.strata],
        by_site=definition.randomization.stratify_by_site,
    )
    if problems:
        raise InvalidAllocationTable(problems)
    session.execute(delete(AllocationTableRow).where(AllocationTableRow.study_id == study.id))
    session.add_all(
        AllocationTableRow(
            study_id=study.id,
            stratum=r.stratum,
            sequence=r.sequence,
            arm=r.arm,
            block=r.block,
            block_size=r.block_size,
            position=r.position,
        )
        for r in rows
    )
    digest = table_digest(rows)
    strata = len({r.stratum for r in rows})
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=TABLE_LOADED,
        entity_type="study",
        entity_id=study.slug,
        study_id=study.id,
        now=now,
        # The digest, not the rows: the trail is read by people who must stay blind.
        changes={
            "rows": audit.change(None, len(rows)),
            "strata": audit.change(None, strata),
            "sha256": audit.change(None, digest),
        },
    )
    return len(rows), strata, digest
