"""Checking a study's allocations (pure): re-derive every slot and compare.

Like `audit.chain`, this module only checks what it is given; `service.verify` reads the
ledger and hands it over. What it finds is listed, not raised: a verifier wants every
problem, not the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.randomization.blocks import commitment, sequence
from app.randomization.plan import Assignment, Plan


@dataclass(frozen=True)
class Finding:
    """One way in which a study's allocations do not hold."""

    where: str
    problem: str


@dataclass(frozen=True)
class LedgerRow:
    sequence: int
    participant_id: int
    assignment: Assignment


@dataclass(frozen=True)
class StratumLedger:
    """One stratum's counter and its allocations, in sequence order."""

    key: str
    allocated: int
    rows: Sequence[LedgerRow]


@dataclass(frozen=True)
class ParticipantFacts:
    """What the check needs to know of a participant."""

    code: str
    stratum: str | None
    was_randomized: bool


Table = Mapping[tuple[str, int], Assignment]


def check_commitment(*, secret: bytes, slug: str, published: str | None) -> list[Finding]:
    """The secret must be the one the study committed to (if it has committed yet)."""
    if published is not None and commitment(secret=secret, slug=slug) != published:
        return [Finding("study", "the secret does not match the published commitment")]
    return []


def check_allocations(
    *,
    plan: Plan,
    secret: bytes,
    strata: Sequence[StratumLedger],
    table: Table | None,
    participants: Mapping[int, ParticipantFacts],
) -> list[Finding]:
    """Every slot re-derived (from the secret, or the table when `table` is given) and
    compared; every counter and every participant's status checked against the ledger."""
    findings: list[Finding] = []
    allocated: set[int] = set()
    for stratum in strata:
        expected = _expected(plan, secret, stratum, table)
        for index, (row, slot) in enumerate(zip(stratum.rows, expected, strict=True)):
            where = f"{stratum.key} #{index + 1}"
            if row.sequence != index + 1:
                findings.append(Finding(where, f"sequence {row.sequence}: a slot is missing"))
            if slot is None:
                findings.append(Finding(where, "not in the allocation table"))
            elif row.assignment != slot:
                findings.append(Finding(where, "does not match the re-derived sequence"))
            facts = participants.get(row.participant_id)
            if facts is None or facts.stratum != stratum.key:
                findings.append(Finding(where, "the participant is not of this stratum"))
            allocated.add(row.participant_id)
        if stratum.allocated != len(stratum.rows):
            findings.append(
                Finding(
                    stratum.key,
                    f"counter says {stratum.allocated}, ledger has {len(stratum.rows)}",
                )
            )
    for participant_id, facts in participants.items():
        if facts.was_randomized != (participant_id in allocated):
            findings.append(Finding(facts.code, "status and allocation ledger disagree"))
    return findings


def _expected(
    plan: Plan, secret: bytes, stratum: StratumLedger, table: Table | None
) -> list[Assignment | None]:
    count = len(stratum.rows)
    if table is not None:
        return [table.get((stratum.key, i + 1)) for i in range(count)]
    return [
        Assignment(s.block, s.block_size, s.position, s.arm)
        for s in sequence(
            secret=secret,
            stratum=stratum.key,
            count=count,
            sizes=plan.block_sizes,
            arms=plan.arms,
        )
    ]
