"""Study API schemas: what admins send and what each role sees of a study.

What a role may see is decided by `randomization.blinding`; the schema is chosen from
that answer, and a blinded schema has no field for what it hides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.randomization.blinding import View
from app.randomization.models import Allocation
from app.randomization.strata import MAX_STRATA
from app.studies.definition import MAX_BLOCK_SIZE, StudyDefinition
from app.studies.models import Study


class ArmRead(BaseModel):
    code: str
    label: str
    ratio: int


class FactorRead(BaseModel):
    code: str
    levels: list[str]


class RandomizationRead(BaseModel):
    method: str
    stratify_by_site: bool
    strata: list[FactorRead]
    requires_completed: list[str]


class RandomizationDesignRead(RandomizationRead):
    block_sizes: list[int]


class SiteRead(BaseModel):
    code: str
    name: str


class StudyRead(BaseModel):
    """A study as a role that may see neither arms nor the design sees it."""

    slug: str
    title: str
    status: str
    commitment: str | None = Field(
        description="hex SHA-256 of the study secret and slug, published at activation"
    )
    created_at: datetime
    activated_at: datetime | None
    locked_at: datetime | None
    arm_count: int
    randomization: RandomizationRead
    eligibility: list[dict[str, object]]
    consent_versions: list[str]
    schedule: list[dict[str, object]]
    sites: list[SiteRead]


class StudyReadWithArms(StudyRead):
    """For roles the study's blinding lets see arms."""

    arms: list[ArmRead]


class StudyReadWithDesign(StudyRead):
    """For roles that may read the allocation ledger: block sizes, and the secret."""

    randomization: RandomizationDesignRead
    secret: str | None = Field(
        description="the study secret (hex), revealed once the study is locked"
    )


class StudyReadUnblinded(StudyReadWithArms, StudyReadWithDesign):
    """Arms and design both."""

    # Named again: the first base's plain `randomization` would otherwise win, and the
    # block sizes would be dropped from the answer.
    randomization: RandomizationDesignRead


AnyStudyRead = StudyReadUnblinded | StudyReadWithArms | StudyReadWithDesign | StudyRead


@dataclass(frozen=True)
class StudyDescription:
    """A study, its definition, and what the caller may see of it (from blinding)."""

    study: Study
    definition: StudyDefinition
    view: View
    secret: bytes | None  # only once locked, and only for roles that see the design


def study_read(description: StudyDescription) -> AnyStudyRead:
    """The study in the schema its viewer's blinding calls for."""
    study, definition, view = description.study, description.definition, description.view
    r = definition.randomization
    common = {
        "slug": study.slug,
        "title": study.title,
        "status": study.status,
        "commitment": study.commitment,
        "created_at": study.created_at,
        "activated_at": study.activated_at,
        "locked_at": study.locked_at,
        "arm_count": len(definition.arms),
        "eligibility": [c.model_dump(mode="json") for c in definition.eligibility],
        "consent_versions": definition.consent_versions,
        "schedule": [t.model_dump(mode="json") for t in definition.schedule],
        "sites": [SiteRead(code=s.code, name=s.name) for s in study.sites],
    }
    randomization = {
        "method": r.method,
        "stratify_by_site": r.stratify_by_site,
        "strata": [FactorRead(code=f.code, levels=f.levels) for f in r.strata],
        "requires_completed": r.requires_completed,
    }
    arms = [ArmRead(code=a.code, label=a.label, ratio=a.ratio) for a in definition.arms]
    if view.design:
        design = {
            "randomization": RandomizationDesignRead(**randomization, block_sizes=r.block_sizes),
            "secret": description.secret.hex() if description.secret is not None else None,
        }
        if view.arms:
            return StudyReadUnblinded(**common, **design, arms=arms)
        return StudyReadWithDesign(**common, **design)
    blinded = RandomizationRead(**randomization)
    if view.arms:
        return StudyReadWithArms(**common, randomization=blinded, arms=arms)
    return StudyRead(**common, randomization=blinded)


class StudyList(BaseModel):
    items: list[AnyStudyRead]
    next: str | None


class StudyActivated(BaseModel):
    slug: str
    status: str
    commitment: str
    activated_at: datetime


class StudyLockRead(BaseModel):
    slug: str
    status: str
    commitment: str | None
    locked_at: datetime
    secret: str = Field(description="the revealed study secret (hex): re-derive and check")


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,12}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]


class AllocationTableLoaded(BaseModel):
    rows: int
    strata: int
    sha256: str = Field(description="digest of the table, also in the audit trail")


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


def allocation_reads(
    rows: Sequence[tuple[Allocation, str]], definition: StudyDefinition
) -> list[AllocationRead]:
    """Ledger rows (each with the email of who randomized) as the API shows them."""
    return [
        AllocationRead(
            participant=allocation.participant_code,
            stratum=allocation.stratum.key,
            block=allocation.block,
            block_size=allocation.block_size,
            position=allocation.position,
            sequence=allocation.sequence,
            arm=allocation.arm,
            arm_label=definition.arm_label(allocation.arm),
            randomized_at=allocation.randomized_at,
            randomized_by=email,
        )
        for allocation, email in rows
    ]


Share = Annotated[float, Field(gt=0, le=1e6, description="relative weight")]
ShortText = Annotated[str, Field(max_length=64)]


class SimulationRequest(BaseModel):
    """What to simulate; proportions default to equal shares."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    participants: int = Field(default=300, ge=1, le=10_000)
    runs: int = Field(default=200, ge=1, le=1_000)
    block_sizes: list[Annotated[int, Field(ge=1, le=MAX_BLOCK_SIZE)]] | None = Field(
        default=None, max_length=10, description="try other block sizes than the study's"
    )
    site_proportions: dict[Annotated[str, Field(max_length=12)], Share] | None = Field(
        default=None,
        max_length=MAX_STRATA,
        description="share of participants per site code; default equal",
    )
    strata_proportions: (
        dict[ShortText, Annotated[dict[ShortText, Share], Field(max_length=50)]] | None
    ) = Field(default=None, max_length=10, description="per factor, share per level; default equal")
    seed: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="for a reproducible report"
    )
