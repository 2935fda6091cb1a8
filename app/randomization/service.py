"""The allocation ledger: taking the next slot of a stratum under a lock, allocation
tables, and reading the ledger back for lists and verification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.models import User
from app.auth.principal import Principal
from app.errors import AllocationTableExhausted, InvalidAllocationTable
from app.randomization.blocks import next_slot
from app.randomization.models import Allocation, AllocationTableRow, Stratum
from app.randomization.plan import Assignment, Plan
from app.randomization.table import TableRow, parse_table, table_digest
from app.randomization.verification import (
    Finding,
    LedgerRow,
    ParticipantFacts,
    StratumLedger,
    Table,
    check_allocations,
    check_commitment,
)


def allocate(
    session: Session,
    *,
    study_id: int,
    plan: Plan,
    secret: bytes,
    stratum: str,
    participant_id: int,
    participant_code: str,
    actor: Principal,
) -> Allocation:
    """Give the participant the next slot of the stratum, in the caller's transaction.

    The stratum's row is locked (SQLite: the whole database, from BEGIN IMMEDIATE) while
    the slot is taken, and unique constraints on (stratum, sequence), (stratum, block,
    position) and the participant back the lock up: no two participants get one slot,
    no slot is skipped, nobody is allocated twice.
    """
    now = audit.lock_chain_head(session).at  # the head first: see its lock order
    row = _lock_stratum(session, study_id=study_id, key=stratum)
    slot = _next_assignment(session, study_id=study_id, plan=plan, secret=secret, stratum=row)
    allocation = Allocation(
        study_id=study_id,
        stratum_id=row.id,
        participant_id=participant_id,
        participant_code=participant_code,
        sequence=row.allocated + 1,
        block=slot.block,
        block_size=slot.block_size,
        position=slot.position,
        arm=slot.arm,
        randomized_by=actor.id,
        randomized_at=now,
    )
    row.allocated += 1
    if slot.block is not None and slot.block_size is not None and slot.position is not None:
        row.last_block, row.last_block_size = slot.block, slot.block_size
        row.last_position = slot.position
    session.add(allocation)
    session.flush()
    return allocation


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


def _next_assignment(
    session: Session, *, study_id: int, plan: Plan, secret: bytes, stratum: Stratum
) -> Assignment:
    if plan.method == "table":
        row = session.scalars(
            select(AllocationTableRow).where(
                AllocationTableRow.study_id == study_id,
                AllocationTableRow.stratum == stratum.key,
                AllocationTableRow.sequence == stratum.allocated + 1,
            )
        ).first()
        if row is None:
            raise AllocationTableExhausted(f"no row {stratum.allocated + 1} for {stratum.key}")
        return Assignment(row.block, row.block_size, row.position, row.arm)
    slot = next_slot(
        secret=secret,
        stratum=stratum.key,
        last_block=stratum.last_block,
        last_block_size=stratum.last_block_size,
        last_position=stratum.last_position,
        sizes=plan.block_sizes,
        arms=plan.arms,
    )
    return Assignment(slot.block, slot.block_size, slot.position, slot.arm)


def allocation_of(session: Session, *, participant_id: int) -> Allocation | None:
    """The participant's allocation, if randomized."""
    return session.scalars(
        select(Allocation).where(Allocation.participant_id == participant_id)
    ).first()


def count_allocations(session: Session, *, study_id: int) -> int:
    """How many allocations the study has made."""
    return (
        session.scalar(
            select(func.count()).select_from(Allocation).where(Allocation.study_id == study_id)
        )
        or 0
    )


def list_allocations(
    session: Session, *, study_id: int, after_id: int, limit: int
) -> Sequence[tuple[Allocation, str]]:
    """Allocations in the order they were made, each with the email of who randomized."""
    rows = session.execute(
        select(Allocation, User.email)
        .join(User, User.id == Allocation.randomized_by)
        .where(Allocation.study_id == study_id, Allocation.id > after_id)
        .order_by(Allocation.id)
        .limit(limit)
    ).all()
    return [(allocation, email) for allocation, email in rows]


@dataclass(frozen=True)
class TableLoaded:
    rows: int
    strata: int
    sha256: str


def replace_table(
    session: Session,
    *,
    study_id: int,
    study_slug: str,
    plan: Plan,
    text: str,
    actor: Principal,
) -> TableLoaded:
    """Check the CSV against the plan and make it the study's allocation table."""
    rows, problems = parse_table(
        text,
        arms=[a.code for a in plan.arms],
        factors=[(f.code, f.levels) for f in plan.factors],
        by_site=plan.stratify_by_site,
    )
    if problems:
        raise InvalidAllocationTable(problems)
    audit.lock_chain_head(session)
    session.execute(delete(AllocationTableRow).where(AllocationTableRow.study_id == study_id))
    session.add_all(
        AllocationTableRow(
            study_id=study_id,
            stratum=r.stratum,
            sequence=r.sequence,
            arm=r.arm,
            block=r.block,
            block_size=r.block_size,
            position=r.position,
        )
        for r in rows
    )
    loaded = TableLoaded(len(rows), len({r.stratum for r in rows}), table_digest(rows))
    session.flush()
    audit.record(
        session,
        AuditAction.allocation_table_loaded,
        actor=actor,
        entity_id=study_slug,
        study_id=study_id,
        # The digest, not the rows: the trail is read by people who must stay blind.
        changes={
            "rows": (None, loaded.rows),
            "strata": (None, loaded.strata),
            "sha256": (None, loaded.sha256),
        },
    )
    return loaded


def has_table(session: Session, *, study_id: int) -> bool:
    """Whether the study has an allocation table loaded."""
    return (
        session.scalar(
            select(AllocationTableRow.id).where(AllocationTableRow.study_id == study_id).limit(1)
        )
        is not None
    )


def verify(
    session: Session,
    *,
    study_id: int,
    slug: str,
    plan: Plan,
    secret: bytes,
    commitment: str | None,
    participants: Mapping[int, ParticipantFacts],
) -> list[Finding]:
    """Re-derive every allocation of the study from the secret (or the table) and check
    the ledger against the commitment, the audited table and the participants."""
    findings = check_commitment(secret=secret, slug=slug, published=commitment)
    table: Table | None = None
    if plan.method == "table":
        table, problem = _audited_table(session, study_id=study_id)
        if problem:
            findings.append(Finding("allocation table", problem))
    strata = [
        StratumLedger(
            key=stratum.key,
            allocated=stratum.allocated,
            rows=[
                LedgerRow(
                    a.sequence,
                    a.participant_id,
                    Assignment(a.block, a.block_size, a.position, a.arm),
                )
                for a in session.scalars(
                    select(Allocation)
                    .where(Allocation.stratum_id == stratum.id)
                    .order_by(Allocation.sequence)
                )
            ],
        )
        for stratum in session.scalars(select(Stratum).where(Stratum.study_id == study_id))
    ]
    findings += check_allocations(
        plan=plan, secret=secret, strata=strata, table=table, participants=participants
    )
    return findings


def _audited_table(session: Session, *, study_id: int) -> tuple[Table, str | None]:
    """The stored table, and a problem if it is not the table the audit trail recorded."""
    rows = [
        TableRow(r.stratum, r.sequence, r.arm, r.block, r.block_size, r.position)
        for r in session.scalars(
            select(AllocationTableRow).where(AllocationTableRow.study_id == study_id)
        )
    ]
    recorded = audit.latest_change(
        session, study_id=study_id, action=AuditAction.allocation_table_loaded, field="sha256"
    )
    problem = None
    if recorded is None:
        problem = "no allocation table was ever loaded"
    elif recorded != table_digest(rows):
        problem = "the stored table differs from the one recorded in the audit trail"
    table = {
        (r.stratum, r.sequence): Assignment(r.block, r.block_size, r.position, r.arm) for r in rows
    }
    return table, problem
