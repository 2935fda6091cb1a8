"""Inputs that must get a 4xx (never a 500), and secrets that must not be kept or shown."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from fastapi.testclient import TestClient

from app.api.deps import SessionDep
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.service import verify_chain
from app.demo import demo_definition
from app.main import create_app
from tests.helpers import STUDY, bearer, enrollment

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def test_nul_characters_are_refused_in_bodies_and_paths(api):
    coordinator = api.user("coordinator", "PHL")
    body = api.client.post(
        PARTICIPANTS, json=enrollment(name="Pat\x00Doe"), headers=bearer(coordinator)
    )
    assert body.status_code == 422
    path = api.client.get(f"{PARTICIPANTS}/PS%00X", headers=bearer(coordinator))
    assert path.status_code == 422
    query = api.client.get(f"{PARTICIPANTS}?site=P%00HL", headers=bearer(coordinator))
    assert query.status_code == 422
    unblinded = api.client.get(
        f"/api/v1/studies/{STUDY}/exports/unblinded?reason=why%00",
        headers=bearer(api.admin_token),
    )
    assert unblinded.status_code == 422  # never a NUL into the audit trail


def test_out_of_range_numbers_are_4xx(api):
    admin = bearer(api.admin_token)
    import base64

    cursor = base64.urlsafe_b64encode(b"v1:99999999999999999999999").decode().rstrip("=")
    assert api.client.get(f"{PARTICIPANTS}?cursor={cursor}", headers=admin).status_code == 422
    simulate = api.client.post(
        f"/api/v1/studies/{STUDY}/simulate",
        json={"site_proportions": {"PHL": 1e308, "PIT": 1e308}},
        headers=admin,
    )
    assert simulate.status_code == 422
    huge_block = demo_definition() | {"slug": "huge-blocks"}
    huge_block["randomization"] = huge_block["randomization"] | {"block_sizes": [300000]}
    assert api.client.post("/api/v1/studies", json=huge_block, headers=admin).status_code == 422


def test_the_revealed_secret_is_shown_only_to_roles_that_see_allocations(api):
    admin = bearer(api.admin_token)
    assert api.client.post(f"/api/v1/studies/{STUDY}/lock", headers=admin).status_code == 200
    for role, sites in (("statistician", ()), ("coordinator", ("PHL",))):
        token = api.user(role, *sites)
        shown = api.client.get(f"/api/v1/studies/{STUDY}", headers=bearer(token)).json()
        assert shown["status"] == "locked"
        assert "secret" not in shown, role
    unblinded = api.user("unblinded_statistician")
    assert api.client.get(f"/api/v1/studies/{STUDY}", headers=bearer(unblinded)).json()["secret"]


def test_allocations_follow_the_studys_blinding_even_for_privileged_roles(api):
    admin = bearer(api.admin_token)
    definition = demo_definition() | {
        "slug": "dmc-only",
        "blinding": {"arm_visible_to": ["unblinded_statistician"]},
    }
    assert api.client.post("/api/v1/studies", json=definition, headers=admin).status_code == 201
    assert api.client.get("/api/v1/studies/dmc-only/allocations", headers=admin).status_code == 403
    dmc = api.user("unblinded_statistician")
    assert (
        api.client.get("/api/v1/studies/dmc-only/allocations", headers=bearer(dmc)).status_code
        == 200
    )


def test_whole_floats_in_audit_changes_verify_on_every_backend(db):
    with db.begin() as session:
        audit.record(
            session,
            AuditAction.site_created,
            actor=None,
            entity_id="numbers:1",
            changes={"big": (None, 1e16), "half": (0.5, 2.0), "nested": (None, [2.0, {"x": 3.0}])},
        )
    with db.session(write=False) as session:
        assert verify_chain(session) == []


def _insert_a_head_row(session: SessionDep) -> None:
    session.execute(sa.text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (2, 0, 'x')"))


def test_a_write_made_through_another_dependency_is_committed_with_the_request(settings, db):
    app = create_app(settings)

    @app.post("/through-a-dependency")
    def endpoint(_: Annotated[None, Depends(_insert_a_head_row)]) -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as client:
        assert client.post("/through-a-dependency").status_code == 200
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM audit_chain_head WHERE id = 2")).all()
