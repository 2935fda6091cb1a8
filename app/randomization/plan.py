"""A study's randomization plan, as the engine needs it (pure).

Studies turn their definition into a `Plan`; the randomization package knows nothing
else of a study, so it can sit below studies and participants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from app.randomization.blocks import ArmRatio
from app.randomization.strata import stratum_key

Method = Literal["blocks", "table"]


@dataclass(frozen=True)
class Factor:
    code: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """How a study allocates: permuted blocks of these sizes, or an uploaded table."""

    method: Method
    arms: tuple[ArmRatio, ...]
    block_sizes: tuple[int, ...]
    stratify_by_site: bool
    factors: tuple[Factor, ...]

    def stratum_of(self, *, site: str, levels: Mapping[str, str]) -> str:
        """The stratum key of a participant of this site with these levels."""
        return stratum_key(
            site=site if self.stratify_by_site else None,
            factors=[f.code for f in self.factors],
            levels=levels,
        )


@dataclass(frozen=True)
class Assignment:
    """One slot as given: from the block rule, or from a table that may give no blocks."""

    block: int | None
    block_size: int | None
    position: int | None
    arm: str
