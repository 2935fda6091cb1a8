"""Every input has a bound: bodies, JSON, strings, lists, numbers and the work they ask for."""

from __future__ import annotations

import json

import sqlalchemy as sa

from app.demo import demo_definition
from tests.helpers import STUDY, bearer, english_only, enrollment

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"
JSON = {"content-type": "application/json"}


def _count(db, table: str) -> int:
    with db.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_a_body_over_one_megabyte_is_413_before_authentication(api):
    big = json.dumps({"site": "PHL", "screening": {}, "pad": "x" * (1024 * 1024)})
    response = api.client.post(PARTICIPANTS, content=big, headers=JSON)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_a_body_is_counted_as_it_streams_not_trusted_from_its_length(api):
    def chunks():
        for _ in range(20):
            yield b"x" * 100_000

    response = api.client.post(
        PARTICIPANTS, content=chunks(), headers={**JSON, **bearer(api.admin_token)}
    )
    assert response.status_code == 413


def test_an_allocation_table_may_be_larger_than_a_json_body(api):
    admin = bearer(api.admin_token)
    definition = demo_definition() | {"slug": "big-table"}
    definition["randomization"] = definition["randomization"] | {"method": "table"}
    assert api.client.post("/api/v1/studies", json=definition, headers=admin).status_code == 201
    api.client.post(
        "/api/v1/studies/big-table/sites", json={"code": "PHL", "name": "P"}, headers=admin
    )
    rows = "".join(f"site=PHL|diagnosis=bipolar,{i},control\n" for i in range(1, 60_001))
    csv = "stratum,sequence,arm\n" + rows
    assert len(csv) > 1024 * 1024
    response = api.client.put(
        "/api/v1/studies/big-table/allocation-table",
        content=csv,
        headers={**admin, "content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["rows"] == 60_000


def test_bad_json_is_401_for_strangers_and_422_for_staff(api):
    for body in (b"{not json", b"[" * 100_000, json.dumps({"a": "\x00"}).encode()):
        assert api.client.post(PARTICIPANTS, content=body, headers=JSON).status_code == 401
        refused = api.client.post(
            PARTICIPANTS, content=body, headers={**JSON, **bearer(api.admin_token)}
        )
        assert refused.status_code == 422, refused.text
        where = ["body", "a"] if b"u0000" in body else ["body"]  # a NUL is named where it is
        assert refused.json()["errors"][0]["loc"] == where


def test_json_nested_deeper_than_allowed_is_422(api):
    nested: object = "leaf"
    for _ in range(40):
        nested = {"k": nested}
    response = api.client.post(
        PARTICIPANTS, json={"site": "PHL", "screening": nested}, headers=bearer(api.admin_token)
    )
    assert response.status_code == 422
    assert "deep" in response.json()["errors"][0]["msg"]


def test_a_lone_surrogate_anywhere_is_422_never_500(api, db):
    admin = {**JSON, **bearer(api.admin_token)}
    for where in ("screening", "strata"):
        body = enrollment()
        body[where] = {**body[where], "\ud800": True if where == "screening" else "x"}
        text = json.dumps(body)  # ASCII with a \\ud800 escape: valid JSON, invalid Unicode
        response = api.client.post(PARTICIPANTS, content=text, headers=admin)
        assert response.status_code == 422, response.text
    assert _count(db, "participants") == 0


def test_a_backslash_u_0000_written_out_is_honest_text(api, db):
    coordinator = api.user("coordinator", "PHL")
    body = enrollment(name="Literally \\u0000")  # the six characters, not a NUL
    response = api.client.post(PARTICIPANTS, json=body, headers=bearer(coordinator))
    assert response.status_code == 201, response.text
    shown = api.client.get(f"{PARTICIPANTS}/{response.json()['code']}", headers=bearer(coordinator))
    assert shown.json()["contact"]["name"] == "Literally \\u0000"


def test_strings_lists_and_maps_of_an_enrollment_are_bounded(api):
    admin = bearer(api.admin_token)
    too_long_site = enrollment(site="P" * 1_000_000)
    response = api.client.post(PARTICIPANTS, json=too_long_site, headers=admin)
    assert response.status_code in (413, 422)
    many_keys = enrollment(screening={f"c{i}": True for i in range(5000)})
    response = api.client.post(PARTICIPANTS, json=many_keys, headers=admin)
    assert response.status_code == 422
    assert len(response.content) < 10_000  # the answer does not echo 5,000 problems


def test_a_definition_is_bounded_in_text_numbers_and_strata(api):
    admin = bearer(api.admin_token)
    crisis = demo_definition() | {"slug": "crisis", "crisis_text": "x" * 5000}
    assert api.client.post("/api/v1/studies", json=crisis, headers=admin).status_code == 422
    far = demo_definition() | {"slug": "far"}
    far["schedule"] = [dict(far["schedule"][0], day=10**40)]
    assert api.client.post("/api/v1/studies", json=far, headers=admin).status_code == 422
    strata = english_only(demo_definition()) | {"slug": "strata"}
    strata["randomization"] = strata["randomization"] | {
        "strata": [{"code": f"f{i}", "levels": ["a", "b", "c", "d"]} for i in range(6)]
    }  # 4**6 = 4096 combinations
    refused = api.client.post("/api/v1/studies", json=strata, headers=admin)
    assert refused.status_code == 422
    assert "strata" in refused.text


def test_sites_that_would_make_too_many_strata_are_refused(api):
    admin = bearer(api.admin_token)
    definition = english_only(demo_definition()) | {"slug": "many-sites"}
    definition["randomization"] = definition["randomization"] | {
        "strata": [{"code": "f", "levels": [f"l{i}" for i in range(50)]},
                   {"code": "g", "levels": [f"l{i}" for i in range(10)]}]
    }  # fmt: skip
    assert api.client.post("/api/v1/studies", json=definition, headers=admin).status_code == 201
    url = "/api/v1/studies/many-sites/sites"
    first = api.client.post(url, json={"code": "A", "name": "A"}, headers=admin)
    second = api.client.post(url, json={"code": "B", "name": "B"}, headers=admin)
    assert (first.status_code, second.status_code) == (201, 201)
    third = api.client.post(url, json={"code": "C", "name": "C"}, headers=admin)
    assert third.status_code == 409
    assert third.json()["type"].endswith("too-many-strata")


def test_simulate_takes_degenerate_shares_without_a_500(api):
    admin = bearer(api.admin_token)
    body = {
        "participants": 30,
        "runs": 2,
        "site_proportions": {"PHL": 5e-324, "PIT": 1e6},
        "strata_proportions": {"diagnosis": {"bipolar": 5e-324, "depressive": 5e-324}},
        "seed": 1,
    }
    response = api.client.post(f"/api/v1/studies/{STUDY}/simulate", json=body, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["participants"] == 30
