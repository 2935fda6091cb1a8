"""Verification as a pure check: re-derive every slot and report each disagreement."""

from __future__ import annotations

import dataclasses

from app.randomization.blocks import ArmRatio, commitment, sequence
from app.randomization.plan import Assignment, Factor, Plan
from app.randomization.verification import (
    LedgerRow,
    ParticipantFacts,
    StratumLedger,
    check_allocations,
    check_commitment,
)

SECRET = bytes(range(32))
PLAN = Plan(
    method="blocks",
    arms=(ArmRatio("a", 1), ArmRatio("b", 1), ArmRatio("c", 1)),
    block_sizes=(3, 6),
    stratify_by_site=True,
    factors=(Factor("dx", ("x", "y")),),
)
KEY = "site=PHL|dx=x"


def _ledger(n: int = 8) -> tuple[StratumLedger, dict[int, ParticipantFacts]]:
    slots = sequence(secret=SECRET, stratum=KEY, count=n, sizes=PLAN.block_sizes, arms=PLAN.arms)
    rows = [
        LedgerRow(i + 1, 100 + i, Assignment(s.block, s.block_size, s.position, s.arm))
        for i, s in enumerate(slots)
    ]
    facts = {100 + i: ParticipantFacts(f"P-{i}", KEY, was_randomized=True) for i in range(n)}
    return StratumLedger(KEY, n, rows), facts


def _check(stratum: StratumLedger, facts: dict[int, ParticipantFacts]) -> list[str]:
    found = check_allocations(
        plan=PLAN, secret=SECRET, strata=[stratum], table=None, participants=facts
    )
    return [f"{f.where}: {f.problem}" for f in found]


def test_an_untouched_ledger_has_no_finding():
    assert _check(*_ledger()) == []


def test_a_changed_arm_is_found_at_its_slot():
    stratum, facts = _ledger()
    row = stratum.rows[4]
    other = "b" if row.assignment.arm == "a" else "a"
    changed = dataclasses.replace(row, assignment=dataclasses.replace(row.assignment, arm=other))
    rows = [*stratum.rows[:4], changed, *stratum.rows[5:]]
    assert _check(dataclasses.replace(stratum, rows=rows), facts) == [
        f"{KEY} #5: does not match the re-derived sequence"
    ]


def test_a_removed_slot_a_wrong_counter_and_a_status_without_allocation_are_found():
    stratum, facts = _ledger()
    rows = [*stratum.rows[:2], *stratum.rows[3:]]
    found = _check(dataclasses.replace(stratum, rows=rows), facts)
    assert f"{KEY}: counter says 8, ledger has 7" in found
    assert "P-2: status and allocation ledger disagree" in found
    assert any("a slot is missing" in f for f in found)


def test_a_participant_of_another_stratum_is_found():
    stratum, facts = _ledger()
    facts[101] = ParticipantFacts("P-1", "site=PHL|dx=y", was_randomized=True)
    assert _check(stratum, facts) == [f"{KEY} #2: the participant is not of this stratum"]


def test_the_secret_must_match_the_published_commitment():
    published = commitment(secret=SECRET, slug="trial")
    assert check_commitment(secret=SECRET, slug="trial", published=published) == []
    assert check_commitment(secret=SECRET, slug="trial", published=None) == []
    assert check_commitment(secret=bytes(32), slug="trial", published=published) != []
