"""The demo study and its admin, as `trialdesk demo` and `make run` load them."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.principal import Role
from app.studies import service as study_service
from app.studies.lifecycle import StudyStatus
from app.studies.models import Study
from app.studies.validation import parse_definition
from app.users import service as users

DEMO_ADMIN_EMAIL = "admin@demo.trialdesk.org"
DEMO_SITES = (("PHL", "Philadelphia"), ("PIT", "Pittsburgh"))


@dataclass(frozen=True)
class DemoLoaded:
    slug: str
    created_study: bool
    admin_email: str
    token: str


def demo_definition() -> dict[str, Any]:
    """The demo study's definition document, as shipped with the package (a copy of its
    own: callers may change it)."""
    return copy.deepcopy(_demo_document())


@functools.cache
def _demo_document() -> dict[str, Any]:
    # Parsed once per process: the pure-Python YAML parser takes ~50 ms for this file,
    # and tests and the CLI load it often.
    text = resources.files("app.studies").joinpath("demo/peer-support.yaml").read_text()
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def load_demo(session: Session, *, token_lifetime: timedelta = timedelta(days=90)) -> DemoLoaded:
    """Create the demo study (activated, with its sites) and admin, or reuse them.

    Loading twice is harmless: what exists is kept, and the admin gets a new token
    (only its hash is stored, so the old one cannot be shown again); the new token is
    in the audit trail like any other.
    """
    definition = parse_definition(demo_definition())
    study = session.scalars(select(Study).where(Study.slug == definition.slug)).first()
    created = study is None
    admin = auth_service.find_user(session, email=DEMO_ADMIN_EMAIL)
    if admin is None:
        admin, token = users.create_user(
            session,
            email=DEMO_ADMIN_EMAIL,
            name="Demo administrator",
            role=Role.admin,
            sites=[],
            actor=None,
            token_lifetime=token_lifetime,
        )
    else:
        token = users.issue_token(
            session,
            user=admin,
            actor=None,
            token_lifetime=token_lifetime,
            reason="trialdesk demo: a new token for the demo admin",
        )
    actor = auth_service.principal_of(admin)
    if study is None:
        study = study_service.create_study(session, definition=definition, actor=actor)
        for code, name in DEMO_SITES:
            study_service.add_site(session, study=study, code=code, name=name, actor=actor)
    if study.status == StudyStatus.draft:
        study_service.activate_study(session, study=study, actor=actor)
    return DemoLoaded(study.slug, created, admin.email, token.token)
