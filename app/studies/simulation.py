"""Simulating a study's design before go-live (pure): its request checked against the
definition, then handed to `randomization.simulation` with throw-away secrets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.errors import FieldProblem, InvalidInput
from app.randomization.simulation import SimulationResult, simulate
from app.randomization.strata import SITE, combine_shares
from app.studies.definition import StudyDefinition
from app.studies.validation import block_size_problems

MAX_SIMULATED_ALLOCATIONS = 1_000_000


@dataclass(frozen=True)
class Scenario:
    """What to simulate: how many participants and runs, which block sizes (None: the
    study's), and the share of each site and of each factor's levels (None: equal)."""

    participants: int
    runs: int
    block_sizes: Sequence[int] | None = None
    site_proportions: Mapping[str, float] | None = None
    strata_proportions: Mapping[str, Mapping[str, float]] | None = None
    seed: int | None = None


def simulate_design(
    *, definition: StudyDefinition, site_codes: Sequence[str], request: Scenario
) -> SimulationResult:
    """Expected and worst imbalance, and guessability, of the design (or other block
    sizes) for the given shares of sites and levels; every problem is a 422."""
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
    parts: list[tuple[str, Mapping[str, float]]] = []
    if r.stratify_by_site:
        sites = request.site_proportions or {code: 1.0 for code in site_codes}
        for code in sites:
            if code not in site_codes:
                problems.append(FieldProblem(("site_proportions", code), "no such site"))
        if not sites:
            problems.append(
                FieldProblem(("site_proportions",), "the study has no sites yet: give proportions")
            )
        parts.append((SITE, _normalized(sites)))
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
        shares = given.get(factor.code) or dict.fromkeys(factor.levels, 1.0)
        parts.append((factor.code, _normalized(shares)))
    if problems:
        raise InvalidInput(problems)
    return simulate(
        arms=definition.plan().arms,
        block_sizes=sizes,
        strata=combine_shares(parts),
        participants=request.participants,
        runs=request.runs,
        seed=request.seed,
    )


def _normalized(shares: Mapping[str, float]) -> dict[str, float]:
    """Shares that add up to 1, so that the strata's products (however tiny one share is
    beside the others) add up to 1 too and never all vanish."""
    total = sum(shares.values())
    return {key: share / total for key, share in shares.items()}
