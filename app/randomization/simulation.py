"""Simulating enrollment before go-live (pure): how balanced, how guessable.

Each run draws a throw-away secret, enrolls N participants into strata with the given
proportions and allocates them exactly as the live system would. Reported: the
imbalance per arm overall and per stratum (expected and worst over the runs), and how
often an observer who knows every earlier allocation of a stratum guesses the next
one by the convergence strategy (guess the arm furthest below its share so far).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.randomization.blocks import ArmRatio, generate_block


@dataclass(frozen=True)
class ArmImbalance:
    arm: str
    expected: float
    mean_count: float
    mean_abs_imbalance: float
    worst_abs_imbalance: float


@dataclass(frozen=True)
class StratumImbalance:
    stratum: str
    proportion: float
    mean_size: float
    mean_max_imbalance: float
    worst_max_imbalance: float


@dataclass(frozen=True)
class SimulationResult:
    participants: int
    runs: int
    block_sizes: list[int]
    overall: list[ArmImbalance]
    mean_max_imbalance: float
    worst_max_imbalance: float
    strata: list[StratumImbalance]
    correct_guess_rate: float
    chance_guess_rate: float


@dataclass
class _Stream:
    """One stratum's allocations in one run."""

    blocks: int = 0
    pending: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def simulate(
    *,
    arms: Sequence[ArmRatio],
    block_sizes: Sequence[int],
    strata: Mapping[str, float],
    participants: int,
    runs: int,
    seed: int | None = None,
) -> SimulationResult:
    """Simulate `runs` trials of `participants` each; `strata` maps stratum key → share."""
    rng = random.Random(seed)
    keys = list(strata)
    weights = [strata[k] for k in keys]
    total_weight = sum(weights)
    if not keys or not total_weight > 0:
        raise ValueError("the strata's shares must add up to more than zero")
    total_ratio = sum(a.ratio for a in arms)
    share = {a.code: a.ratio / total_ratio for a in arms}
    overall_counts: dict[str, list[int]] = {a.code: [] for a in arms}
    run_max: list[float] = []
    stratum_sizes: dict[str, list[int]] = {k: [] for k in keys}
    stratum_max: dict[str, list[float]] = {k: [] for k in keys}
    correct = 0.0
    for _ in range(runs):
        secret = rng.randbytes(32)
        streams = {k: _Stream(counts={a.code: 0 for a in arms}) for k in keys}
        for key in rng.choices(keys, weights=weights, k=participants):
            stream = streams[key]
            if not stream.pending:
                stream.blocks += 1
                stream.pending = generate_block(
                    secret=secret, stratum=key, block=stream.blocks, sizes=block_sizes, arms=arms
                )
            guesses = _convergence_guess(stream.counts, share)
            arm = stream.pending.pop(0)
            if arm in guesses:
                correct += 1 / len(guesses)
            stream.counts[arm] += 1
        totals = {a.code: sum(s.counts[a.code] for s in streams.values()) for a in arms}
        for code, n in totals.items():
            overall_counts[code].append(n)
        run_max.append(max(abs(totals[c] - participants * share[c]) for c in totals))
        for key, stream in streams.items():
            size = sum(stream.counts.values())
            stratum_sizes[key].append(size)
            stratum_max[key].append(
                max(abs(stream.counts[c] - size * share[c]) for c in stream.counts)
            )
    return SimulationResult(
        participants=participants,
        runs=runs,
        block_sizes=list(block_sizes),
        overall=[
            ArmImbalance(
                arm=a.code,
                expected=participants * share[a.code],
                mean_count=_mean(overall_counts[a.code]),
                mean_abs_imbalance=_mean(
                    [abs(n - participants * share[a.code]) for n in overall_counts[a.code]]
                ),
                worst_abs_imbalance=max(
                    abs(n - participants * share[a.code]) for n in overall_counts[a.code]
                ),
            )
            for a in arms
        ],
        mean_max_imbalance=_mean(run_max),
        worst_max_imbalance=max(run_max),
        strata=[
            StratumImbalance(
                stratum=k,
                proportion=strata[k] / total_weight,
                mean_size=_mean(stratum_sizes[k]),
                mean_max_imbalance=_mean(stratum_max[k]),
                worst_max_imbalance=max(stratum_max[k]),
            )
            for k in keys
        ],
        correct_guess_rate=correct / (participants * runs),
        chance_guess_rate=max(share.values()),
    )


def _convergence_guess(counts: Mapping[str, int], share: Mapping[str, float]) -> list[str]:
    """The arms furthest below their share so far (the observer picks one of them)."""
    so_far = sum(counts.values())
    deficit = {arm: so_far * share[arm] - n for arm, n in counts.items()}
    top = max(deficit.values())
    return [arm for arm, d in deficit.items() if d >= top - 1e-9]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
