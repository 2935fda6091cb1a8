"""Inputs that must get a 4xx (never a 500), and secrets that must not be kept or shown."""

from __future__ import annotations

import sqlalchemy as sa

from app.audit import service as audit
from app.audit.service import verify_chain
from app.db.base import utcnow
from app.demo import demo_definition
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


def test_a_replayed_user_creation_does_not_show_or_keep_the_token(api, db):
    headers = {**bearer(api.admin_token), "Idempotency-Key": "new-user-1"}
    body = {"email": "once@example.org", "name": "Once", "role": "statistician"}
    first = api.client.post("/api/v1/users", json=body, headers=headers)
    token = first.json()["token"]
    assert token.startswith("td_")
    replay = api.client.post("/api/v1/users", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.json()["token"] is None and replay.json()["id"] == first.json()["id"]
    with db.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT response_body FROM idempotency_keys")).all()
    assert stored and all(token not in row[0] for row in stored)


def test_the_same_json_with_other_spacing_is_the_same_request(api, db):
    coordinator = api.user("coordinator", "PHL")
    headers = {
        **bearer(coordinator),
        "Idempotency-Key": "spacing",
        "content-type": "application/json",
    }
    import json

    body = enrollment()
    first = api.client.post(PARTICIPANTS, content=json.dumps(body), headers=headers)
    second = api.client.post(PARTICIPANTS, content=json.dumps(body, indent=4), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()


def test_the_revealed_secret_is_shown_only_to_roles_that_see_allocations(api):
    admin = bearer(api.admin_token)
    assert api.client.post(f"/api/v1/studies/{STUDY}/lock", headers=admin).status_code == 200
    for role, sites in (("statistician", ()), ("coordinator", ("PHL",))):
        token = api.user(role, *sites)
        shown = api.client.get(f"/api/v1/studies/{STUDY}", headers=bearer(token)).json()
        assert shown["status"] == "locked"
        assert shown["secret"] is None, role
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
            actor=None,
            action="test.numbers",
            entity_type="test",
            entity_id=1,
            now=utcnow(),
            changes={"big": audit.change(None, 1e16), "half": 0.5, "nested": [2.0, {"x": 3.0}]},
        )
    with db.session(write=False) as session:
        assert verify_chain(session) == []


def test_an_endpoint_that_would_not_be_committed_is_refused_when_the_app_is_built():
    import pytest
    from fastapi import APIRouter, Depends

    from app.api.deps import SessionDep
    from app.api.routing import TransactionalRoute

    router = APIRouter(route_class=TransactionalRoute)

    def study_dep(session: SessionDep) -> object:
        return session

    with pytest.raises(TypeError, match="SessionDep"):

        @router.post("/rename")
        def rename(study: object = Depends(study_dep)) -> dict[str, bool]:
            return {"ok": True}

    with pytest.raises(TypeError, match="plain `def`"):

        @router.get("/async")
        async def asynchronous(session: SessionDep) -> dict[str, bool]:
            return {"ok": True}
