"""Studies: creation from a definition, activation, sites, and who may see what."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.permissions import SITE_SCOPED_ROLES, Permission, has_permission, may_see_arms
from app.auth.principal import Principal
from app.errors import (
    AllocationTableMissing,
    SiteCodeTaken,
    StudyLocked,
    StudyNotDraft,
    StudyNotEnrolling,
    StudyNotFound,
    StudySlugTaken,
)
from app.randomization.blocks import SECRET_BYTES, commitment
from app.randomization.models import AllocationTableRow
from app.studies.definition import check_definition, default_code_prefix
from app.studies.models import Site, Study, StudyStatus
from app.studies.schemas import ArmRead, SiteRead, StudyDefinition, StudyRead

_definitions: dict[tuple[int, str], StudyDefinition] = {}


StudyLock = Literal["share", "update"]


def definition_of(study: Study) -> StudyDefinition:
    """The study's stored definition, as the typed document.

    Parsed once per process: a stored definition never changes (there is no way to
    edit one), and parsing the whole document on every request was a measurable cost.
    The key holds the study's creation time too, so a test database that reuses an id
    for another study never gets a stale entry.
    """
    key = (study.id, study.created_at.isoformat())
    definition = _definitions.get(key)
    if definition is None:
        definition = StudyDefinition.model_validate(study.definition)
        _definitions[key] = definition
    return definition


def create_study(
    session: Session, *, definition: StudyDefinition, actor: Principal | None, now: datetime
) -> Study:
    """Store a validated definition as a draft study with a fresh 256-bit secret."""
    check_definition(definition)
    if session.scalar(select(Study.id).where(Study.slug == definition.slug)) is not None:
        raise StudySlugTaken(f"a study with slug {definition.slug!r} exists")
    study = Study(
        slug=definition.slug,
        title=definition.title,
        status=StudyStatus.draft,
        definition=definition.model_dump(mode="json"),
        secret=secrets.token_bytes(SECRET_BYTES),
        code_prefix=definition.code_prefix or default_code_prefix(definition.slug),
        created_at=now,
    )
    session.add(study)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="study.created",
        entity_type="study",
        entity_id=study.slug,
        study_id=study.id,
        now=now,
        changes={"status": audit.change(None, StudyStatus.draft.value)},
    )
    return study


def activate_study(
    session: Session, *, study: Study, actor: Principal | None, now: datetime
) -> Study:
    """Open enrollment: fix the randomization settings and publish the commitment."""
    if study.status != StudyStatus.draft:
        raise StudyNotDraft(f"the study is {study.status}, not a draft")
    if definition_of(study).randomization.method == "table" and not session.scalar(
        select(AllocationTableRow.id).where(AllocationTableRow.study_id == study.id).limit(1)
    ):
        raise AllocationTableMissing("load the allocation table before activating")
    study.status = StudyStatus.enrolling
    study.commitment = commitment(secret=study.secret, slug=study.slug)
    study.activated_at = now
    audit.record(
        session,
        actor=actor,
        action="study.activated",
        entity_type="study",
        entity_id=study.slug,
        study_id=study.id,
        now=now,
        changes={
            "status": audit.change(StudyStatus.draft.value, StudyStatus.enrolling.value),
            "commitment": audit.change(None, study.commitment),
        },
    )
    return study


def lock_study(session: Session, *, study: Study, actor: Principal | None, now: datetime) -> Study:
    """Database lock: no more changes, and the secret is revealed for anyone to check."""
    if study.status != StudyStatus.enrolling:
        raise StudyNotEnrolling(f"the study is {study.status}: only an enrolling study locks")
    study.status = StudyStatus.locked
    study.locked_at = now
    audit.record(
        session,
        actor=actor,
        action="study.locked",
        entity_type="study",
        entity_id=study.slug,
        study_id=study.id,
        now=now,
        changes={
            "status": audit.change(StudyStatus.enrolling.value, StudyStatus.locked.value),
            "secret": audit.change(None, study.secret.hex()),
        },
    )
    return study


def get_study(
    session: Session, *, slug: str, user: Principal, lock: StudyLock | None = None
) -> Study:
    """The study, if the user may know of it (a coordinator: only studies of their sites).

    Writes that depend on the study's status take `lock="share"`, so a concurrent
    activation or database lock (`lock="update"`) waits for them, or they for it;
    foreign keys to the study (FOR KEY SHARE) are not blocked by "share". Such
    writes then take the audit chain's head, which every write needs anyway: with the
    study row and the head first, before any participant, stratum or site row, the
    lock order is one everywhere and writers queue first come, first served instead of
    holding a contended row while they wait for the head.
    """
    query = select(Study).where(Study.slug == slug)
    if lock is not None:
        # "share" is FOR NO KEY UPDATE, not FOR SHARE: shared locks would let new writers
        # overtake a waiting activation or lock forever. Writers queue on the audit
        # chain's head right after anyway, so serialising them here costs nothing.
        query = query.with_for_update(key_share=lock == "share").execution_options(
            populate_existing=True
        )
    study = session.scalars(query).first()
    if study is None or not _may_know_study(user, study):
        raise StudyNotFound(f"no study {slug!r}")
    if lock is not None:
        audit.hold_chain(session)
    return study


def list_studies(
    session: Session, *, user: Principal, after_id: int, limit: int
) -> Sequence[Study]:
    """Studies the user may know of, in creation order, after a cursor."""
    query = select(Study).where(Study.id > after_id).order_by(Study.id)
    if user.role in SITE_SCOPED_ROLES:
        query = query.where(Study.id.in_(user.study_ids))
    return session.scalars(query.limit(limit)).all()


def _may_know_study(user: Principal, study: Study) -> bool:
    if user.role in SITE_SCOPED_ROLES:
        return study.id in user.study_ids
    return True


def add_site(
    session: Session, *, study: Study, code: str, name: str, actor: Principal | None, now: datetime
) -> Site:
    """Add a site to a study (draft or enrolling)."""
    if study.status == StudyStatus.locked:
        raise StudyLocked("the study is locked")
    code = code.upper()
    if session.scalar(select(Site.id).where(Site.study_id == study.id, Site.code == code)):
        raise SiteCodeTaken(f"site {code!r} exists in {study.slug}")
    site = Site(study_id=study.id, code=code, name=name, created_at=now)
    session.add(site)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="site.created",
        entity_type="site",
        entity_id=f"{study.slug}:{code}",
        study_id=study.id,
        now=now,
        changes={"code": audit.change(None, code), "name": audit.change(None, name)},
    )
    session.refresh(study, ["sites"])
    return site


def study_read(study: Study, *, user: Principal) -> StudyRead:
    """The study as this user may see it: arms only where the blinding allows."""
    definition = definition_of(study)
    arms = None
    if may_see_arms(user.role, definition.blinding.arm_visible_to):
        arms = [ArmRead(code=a.code, label=a.label, ratio=a.ratio) for a in definition.arms]
    randomization = definition.randomization.model_dump(mode="json")
    if not has_permission(user.role, Permission.read_allocations):
        # Known block sizes let site staff predict the last slots of a block.
        randomization.pop("block_sizes")
    return StudyRead(
        slug=study.slug,
        title=study.title,
        status=study.status,
        commitment=study.commitment,
        created_at=study.created_at,
        activated_at=study.activated_at,
        arms=arms,
        arm_count=len(definition.arms),
        randomization=randomization,
        eligibility=[c.model_dump(mode="json") for c in definition.eligibility],
        consent_versions=definition.consent_versions,
        schedule=[t.model_dump(mode="json") for t in definition.schedule],
        sites=[SiteRead(code=s.code, name=s.name) for s in study.sites],
        locked_at=study.locked_at,
        # Revealed at lock, to those who may see allocations anyway: with it, anyone who
        # knows participants' strata and order could re-derive their arms.
        secret=study.secret.hex()
        if study.status == StudyStatus.locked
        and has_permission(user.role, Permission.read_allocations)
        else None,
    )
