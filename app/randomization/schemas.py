"""Randomization API schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.participants.models import ParticipantStatus
from app.participants.schemas import Reason
from app.studies.schemas import MAX_BLOCK_SIZE


class RandomizeResult(BaseModel):
    code: str
    status: ParticipantStatus
    stratum: str
    randomized_at: datetime
    arm: str | None = Field(default=None, description="only for roles that may see arms")
    arm_label: str | None = Field(default=None, description="only for roles that may see arms")


class UnblindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class UnblindResult(BaseModel):
    code: str
    arm: str
    arm_label: str


class AllocationRead(BaseModel):
    participant: str
    stratum: str
    block: int | None
    block_size: int | None
    position: int | None
    sequence: int
    arm: str
    arm_label: str
    randomized_at: datetime
    randomized_by: str


class AllocationList(BaseModel):
    items: list[AllocationRead]
    next: str | None


Share = Annotated[float, Field(gt=0, le=1e6, description="relative weight")]


class SimulationRequest(BaseModel):
    """What to simulate; proportions default to equal shares."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    participants: int = Field(default=300, ge=1, le=10_000)
    runs: int = Field(default=200, ge=1, le=1_000)
    block_sizes: list[Annotated[int, Field(ge=1, le=MAX_BLOCK_SIZE)]] | None = Field(
        default=None, description="try other block sizes than the study's"
    )
    site_proportions: dict[str, Share] | None = Field(
        default=None, description="share of participants per site code; default equal"
    )
    strata_proportions: dict[str, dict[str, Share]] | None = Field(
        default=None, description="per factor, share per level; default equal"
    )
    seed: int | None = Field(default=None, description="for a reproducible report")
