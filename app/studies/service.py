"""Studies: creation from a definition, activation, lock, sites, and reading them."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import may_know_study, reachable_sites
from app.auth.principal import Principal
from app.db.server_key import keys_of, sealing_keys_of
from app.errors import (
    AllocationTableMissing,
    AllocationTableNotUsed,
    Forbidden,
    SiteCodeTaken,
    StudyNotFound,
    StudySlugTaken,
    TooManyStrata,
)
from app.keys import Use
from app.randomization import blinding
from app.randomization import service as randomization
from app.randomization.blocks import SECRET_BYTES, commitment
from app.randomization.plan import Plan
from app.randomization.simulation import SimulationResult
from app.randomization.strata import MAX_STRATA, count_strata
from app.studies.definition import StudyDefinition
from app.studies.lifecycle import StudyStatus, ensure_draft, ensure_enrolling, ensure_not_locked
from app.studies.models import BlindingKey, Site, Study
from app.studies.pseudonyms import export_order
from app.studies.schemas import SimulationRequest, StudyDescription
from app.studies.simulation import Scenario, simulate_design
from app.studies.translation import translated
from app.studies.validation import check_definition

_definitions: dict[tuple[int, str, int], StudyDefinition] = {}
_translated: dict[tuple[int, str, int, str], StudyDefinition] = {}


class RowLock(Enum):
    """How `get_study` locks the study's row for the rest of the transaction."""

    # Writes that depend on the study's status (enroll, randomize, add a site...).
    # Not FOR SHARE: shared locks would let new writers overtake a waiting activation
    # or lock forever; writers queue on the audit chain's head right after anyway.
    for_no_key_update = "FOR NO KEY UPDATE"
    # Changes of the study itself (activation, database lock).
    for_update = "FOR UPDATE"


def definition_of(study: Study) -> StudyDefinition:
    """The study's stored definition, as the typed document.

    Parsed once per process and revision: a stored definition changes only by an
    amendment, which raises the study's revision; parsing the whole document on every
    request was a measurable cost. The key holds the study's creation time too, so a
    test database that reuses an id for another study never gets a stale entry.
    """
    key = (study.id, study.created_at.isoformat(), study.revision)
    definition = _definitions.get(key)
    if definition is None:
        definition = StudyDefinition.model_validate(study.definition)
        _definitions[key] = definition
    return definition


def definition_in(study: Study, language: str | None) -> StudyDefinition:
    """The study's definition with its participant-visible texts in this language (its
    first language when `language` is none or not one of the study's).

    Cached like `definition_of`, by revision: an amendment that changes a translation
    raises the revision, so the next page shows the new words."""
    definition = definition_of(study)
    if language is None or language == definition.languages[0]:
        return definition
    key = (study.id, study.created_at.isoformat(), study.revision, language)
    shown = _translated.get(key)
    if shown is None:
        shown = translated(definition, language)
        _translated[key] = shown
    return shown


def plan_of(study: Study) -> Plan:
    """The study's randomization plan."""
    return definition_of(study).plan()


def blinding_key_of(session: Session, study: Study) -> bytes:
    """The study's blinding key (pseudonyms, group codes), unsealed: never shown."""
    sealed = session.get_one(BlindingKey, study.id).sealed
    return keys_of(session).open(Use.blinding_key, sealed, context=study.slug)


def export_order_of(session: Session, study: Study, code: str) -> str:
    """The participant's place in the study's exports (from the blinding key)."""
    return export_order(blinding_key_of(session, study), code)


def secret_of(session: Session, study: Study) -> bytes:
    """The study's 256-bit randomization secret (never shown before lock), unsealed.

    It is stored sealed with a key derived from the server key and bound to the slug:
    a copy of the database alone does not reveal the sequence.
    """
    return keys_of(session).open(Use.study_secret, study.secret, context=study.slug)


def create_study(
    session: Session, *, definition: StudyDefinition, actor: Principal | None
) -> Study:
    """Store a validated definition as a draft study with a fresh 256-bit secret."""
    check_definition(definition)
    now = audit.lock_chain_head(session).at
    if session.scalar(select(Study.id).where(Study.slug == definition.slug)) is not None:
        raise StudySlugTaken(f"a study with slug {definition.slug!r} exists")
    study = Study(
        slug=definition.slug,
        title=definition.title,
        status=StudyStatus.draft,
        definition=definition.model_dump(mode="json"),
        secret=sealing_keys_of(session).seal(
            Use.study_secret, secrets.token_bytes(SECRET_BYTES), context=definition.slug
        ),
        code_prefix=definition.participant_code_prefix(),
        created_at=now,
    )
    session.add(study)
    session.flush()
    session.add(
        BlindingKey(
            study_id=study.id,
            sealed=sealing_keys_of(session).seal(
                Use.blinding_key, secrets.token_bytes(SECRET_BYTES), context=study.slug
            ),
            created_at=now,
        )
    )
    audit.record(
        session,
        AuditAction.study_created,
        actor=actor,
        entity_id=study.slug,
        study_id=study.id,
        changes={"status": (None, StudyStatus.draft)},
    )
    return study


def activate_study(session: Session, *, study: Study, actor: Principal | None) -> Study:
    """Open enrollment: fix the randomization settings and publish the commitment."""
    ensure_draft(study.status, what="activated")
    now = audit.lock_chain_head(session).at
    plan = plan_of(study)
    if plan.method == "table" and not randomization.has_table(session, study_id=study.id):
        raise AllocationTableMissing("load the allocation table before activating")
    study.status = StudyStatus.enrolling
    study.commitment = commitment(secret=secret_of(session, study), slug=study.slug)
    study.activated_at = now
    audit.record(
        session,
        AuditAction.study_activated,
        actor=actor,
        entity_id=study.slug,
        study_id=study.id,
        changes={
            "status": (StudyStatus.draft, StudyStatus.enrolling),
            "commitment": (None, study.commitment),
        },
    )
    return study


# What packages above this one do when a study is locked, in the lock's transaction
# (SPEC 11: alternate contacts, other people's data, are purged). They cannot be called
# from here (they import this package), so the application adds them (`app.main`).
LockStep = Callable[..., object]  # (session, *, study, actor, now)
_LOCK_STEPS: list[LockStep] = []


def at_lock(step: LockStep) -> None:
    """Run `step(session, study=..., actor=..., now=...)` at every database lock."""
    if step not in _LOCK_STEPS:
        _LOCK_STEPS.append(step)


def lock_study(session: Session, *, study: Study, actor: Principal | None) -> Study:
    """Database lock: no more changes, and the secret is revealed for anyone to check;
    then the steps added with `at_lock`."""
    ensure_enrolling(study.status)
    now = audit.lock_chain_head(session).at
    study.status = StudyStatus.locked
    study.locked_at = now
    audit.record(
        session,
        AuditAction.study_locked,
        actor=actor,
        entity_id=study.slug,
        study_id=study.id,
        changes={
            "status": (StudyStatus.enrolling, StudyStatus.locked),
            "secret": (None, secret_of(session, study).hex()),
        },
    )
    for step in _LOCK_STEPS:
        step(session, study=study, actor=actor, now=now)
    return study


def get_study(
    session: Session, *, slug: str, user: Principal, lock: RowLock | None = None
) -> Study:
    """The study, if the user may know of it (a coordinator: only studies of their sites).

    With `lock`, the study's row stays locked to the end of the transaction: a write
    that depends on the study's status takes `RowLock.for_no_key_update`, so an
    activation or a database lock (`RowLock.for_update`) waits for it, or it for them.
    """
    query = select(Study).where(Study.slug == slug)
    if lock is not None:
        query = query.with_for_update(key_share=lock is RowLock.for_no_key_update)
        query = query.execution_options(populate_existing=True)
    study = session.scalars(query).first()
    if study is None or not may_know_study(user, frozenset(s.id for s in study.sites)):
        raise StudyNotFound(f"no study {slug!r}")
    return study


def describe(session: Session, *, study: Study, user: Principal) -> StudyDescription:
    """The study and what this user may see of it."""
    definition = definition_of(study)
    view = blinding.policy_for(user.role, definition).view
    # Revealed at lock, to those who may see the design: with it, anyone who knows
    # participants' strata and order could re-derive their arms.
    revealed = view.design and study.status == StudyStatus.locked
    secret = secret_of(session, study) if revealed else None
    return StudyDescription(study, definition, view, secret)


def ensure_arms_visible(study: Study, *, user: Principal) -> None:
    """Refuse (403) a role the study's blinding does not let see arms."""
    if not blinding.policy_for(user.role, definition_of(study)).arms:
        raise Forbidden(f"this study does not show arms to the {user.role} role")


def ensure_trail_readable(study: Study, *, user: Principal) -> None:
    """Refuse (403) a role the study's blinding does not let read its audit records."""
    if not blinding.policy_for(user.role, definition_of(study)).reads_trail():
        raise Forbidden(
            f"this study does not show arms to the {user.role} role, and its audit trail holds them"
        )


def studies_with_hidden_trail(session: Session, *, user: Principal) -> list[int]:
    """The ids of the studies whose audit records the user's role may not read."""
    return [
        study.id
        for study in session.scalars(select(Study).order_by(Study.id))
        if not blinding.policy_for(user.role, definition_of(study)).reads_trail()
    ]


def trail_scope(
    session: Session, user: Principal, slug: str | None
) -> tuple[int | None, list[int]]:
    """What of the audit trail the user reads: the id of the study of `slug` (403 if
    its blinding hides arms from the role, 404 if unknown), and the studies to leave out."""
    study_id = None
    if slug is not None:
        study = get_study(session, slug=slug, user=user)
        ensure_trail_readable(study, user=user)
        study_id = study.id
    return study_id, studies_with_hidden_trail(session, user=user)


def list_studies(
    session: Session, *, user: Principal, after_id: int, limit: int
) -> Sequence[Study]:
    """Studies the user may know of, in creation order, after a cursor."""
    query = select(Study).where(Study.id > after_id).order_by(Study.id)
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(Study.id.in_(select(Site.study_id).where(Site.id.in_(sites))))
    return session.scalars(query.limit(limit)).all()


def add_site(
    session: Session, *, study: Study, code: str, name: str, actor: Principal | None
) -> Site:
    """Add a site to a study (draft or enrolling)."""
    ensure_not_locked(study.status)
    now = audit.lock_chain_head(session).at
    r = definition_of(study).randomization
    strata = count_strata(
        sites=len(study.sites) + 1 if r.stratify_by_site else None,
        levels_per_factor=[len(f.levels) for f in r.strata],
    )
    if strata > MAX_STRATA:
        raise TooManyStrata(f"another site would make {strata} strata; {MAX_STRATA} at most")
    code = code.upper()
    if session.scalar(select(Site.id).where(Site.study_id == study.id, Site.code == code)):
        raise SiteCodeTaken(f"site {code!r} exists in {study.slug}")
    site = Site(study_id=study.id, code=code, name=name, created_at=now)
    session.add(site)
    session.flush()
    audit.record(
        session,
        AuditAction.site_created,
        actor=actor,
        entity_id=f"{study.slug}:{code}",
        study_id=study.id,
        changes={"code": (None, code), "name": (None, name)},
    )
    session.refresh(study, ["sites"])
    return site


def simulate(study: Study, *, request: SimulationRequest) -> SimulationResult:
    """Simulate the study's design (or other block sizes) with throw-away secrets."""
    return simulate_design(
        definition=definition_of(study),
        site_codes=[s.code for s in study.sites],
        request=Scenario(**request.model_dump()),
    )


def find_site(study: Study, code: str) -> Site | None:
    """The study's site with this code (any case), if there is one."""
    return next((s for s in study.sites if s.code == code.upper()), None)


def load_allocation_table(
    session: Session, *, study: Study, text: str, actor: Principal
) -> randomization.TableLoaded:
    """Replace a draft study's allocation table (studies that use the `table` method)."""
    plan = plan_of(study)
    if plan.method != "table":
        raise AllocationTableNotUsed("the study's randomization method is blocks")
    ensure_draft(study.status, what="given a new allocation table")
    return randomization.replace_table(
        session,
        study_id=study.id,
        study_slug=study.slug,
        plan=plan,
        text=text,
        actor=actor,
    )
