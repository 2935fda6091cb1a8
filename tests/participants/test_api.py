"""Screening, enrollment, site scoping, withdrawal and the HTTP rules clients rely on."""

from __future__ import annotations

from app.demo import demo_definition
from tests.helpers import ELIGIBLE, STUDY, bearer, enrollment

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _count(db, table: str) -> int:
    with db.engine.connect() as connection:
        return connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()


def test_ineligible_screening_is_kept_with_its_reasons(api, db):
    coordinator = api.user("coordinator", "PHL")
    screening = dict(ELIGIBLE, internet_access=False, age_18_plus=False)
    response = api.client.post(
        PARTICIPANTS,
        json={"site": "PHL", "screening": screening},
        headers=bearer(coordinator),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "ineligible"
    assert sorted(body["ineligible_reasons"]) == ["age_18_plus", "internet_access"]
    listed = api.client.get(f"{PARTICIPANTS}?status=ineligible", headers=bearer(coordinator))
    assert [p["code"] for p in listed.json()["items"]] == [body["code"]]
    assert _count(db, "contacts") == 0


def test_participant_codes_are_issued_per_site_in_order(api):
    coordinator = api.user("coordinator", "PHL", "PIT")
    codes = [api.enroll(coordinator, site=s) for s in ("PHL", "PHL", "PIT")]
    assert codes == ["PS-PHL-0001", "PS-PHL-0002", "PS-PIT-0001"]


def test_unknown_consent_version_is_422_naming_the_field_and_stores_nothing(api, db):
    coordinator = api.user("coordinator", "PHL")
    before = _count(db, "participants"), _count(db, "audit_records")
    response = api.client.post(
        PARTICIPANTS, json=enrollment(consent={"version": "9.9"}), headers=bearer(coordinator)
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(problem)
    assert problem["errors"] == [
        {"loc": ["body", "consent", "version"], "msg": problem["errors"][0]["msg"]}
    ]
    assert (_count(db, "participants"), _count(db, "audit_records")) == before


def test_every_enrollment_problem_is_listed_with_its_path(api, db):
    coordinator = api.user("coordinator", "PHL")
    body = enrollment(
        screening={"age_18_plus": True, "smi_diagnosis": True, "pets": True},
        strata={"diagnosis": "flu", "age_group": "young"},
        consent=None,
        contact=None,
    )
    response = api.client.post(PARTICIPANTS, json=body, headers=bearer(coordinator))
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert locs == {
        ("body", "screening", "pets"),
        ("body", "screening", "internet_access"),
        ("body", "strata", "diagnosis"),
        ("body", "strata", "age_group"),
        ("body", "consent"),
        ("body", "contact"),
    }
    assert _count(db, "participants") == 0


def test_unknown_site_is_422_and_a_site_not_yours_is_403(api):
    coordinator = api.user("coordinator", "PHL")
    unknown = api.client.post(
        PARTICIPANTS, json=enrollment(site="NYC"), headers=bearer(coordinator)
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "site"]
    other = api.client.post(PARTICIPANTS, json=enrollment(site="PIT"), headers=bearer(coordinator))
    assert other.status_code == 403


def test_malformed_body_is_422_never_500(api):
    coordinator = api.user("coordinator", "PHL")
    for content in (b"{not json", b"[]", b'{"site": 5, "screening": "yes"}', b""):
        response = api.client.post(
            PARTICIPANTS,
            content=content,
            headers={**bearer(coordinator), "content-type": "application/json"},
        )
        assert response.status_code == 422, (content, response.text)
        assert "Traceback" not in response.text
    extra = api.client.post(
        PARTICIPANTS, json=enrollment(favourite_colour="blue"), headers=bearer(coordinator)
    )
    assert extra.status_code == 422


def test_coordinators_see_only_their_sites(api):
    phl = api.user("coordinator", "PHL")
    pit = api.user("coordinator", "PIT")
    mine = api.enroll(phl)
    theirs = api.enroll(pit, site="PIT")
    assert api.client.get(f"{PARTICIPANTS}/{theirs}", headers=bearer(phl)).status_code == 404
    assert api.client.get(f"{PARTICIPANTS}/{mine}", headers=bearer(phl)).status_code == 200
    assert api.randomize(phl, theirs).status_code == 404
    listed = api.client.get(PARTICIPANTS, headers=bearer(phl)).json()["items"]
    assert [p["code"] for p in listed] == [mine]
    assert api.client.get(f"{PARTICIPANTS}?site=PIT", headers=bearer(phl)).status_code == 403
    everything = api.client.get(PARTICIPANTS, headers=bearer(api.admin_token)).json()["items"]
    assert {p["code"] for p in everything} == {mine, theirs}


def test_contact_details_live_apart_from_research_data(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator, name="Robin Quinn")
    with db.engine.connect() as connection:
        row = (
            connection.exec_driver_sql(f"SELECT * FROM participants WHERE code = '{code}'")
            .mappings()
            .one()
        )
        assert "Robin Quinn" not in str(dict(row))
        assert "pat@example.org" not in str(dict(row))
        trail = connection.exec_driver_sql("SELECT * FROM audit_records").mappings().all()
        assert not any(
            "Robin Quinn" in str(dict(c)) or "pat@example" in str(dict(c)) for c in trail
        )
        assert not any(b"Robin Quinn" in bytes(c["sealed"]) for c in trail)
    shown = api.client.get(f"{PARTICIPANTS}/{code}", headers=bearer(coordinator)).json()
    assert shown["contact"]["name"] == "Robin Quinn"


def test_a_draft_study_refuses_enrollment(api):
    definition = demo_definition() | {"slug": "draft-study"}
    created = api.client.post("/api/v1/studies", json=definition, headers=bearer(api.admin_token))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    site = api.client.post(
        "/api/v1/studies/draft-study/sites",
        json={"code": "PHL", "name": "Philadelphia"},
        headers=bearer(api.admin_token),
    )
    assert site.status_code == 201
    response = api.client.post(
        "/api/v1/studies/draft-study/participants",
        json=enrollment(),
        headers=bearer(api.admin_token),
    )
    assert response.status_code == 409


def test_randomizing_twice_is_409_and_consumes_no_slot(api):
    coordinator = api.user("coordinator", "PHL")
    first, second = api.enroll(coordinator), api.enroll(coordinator)
    assert api.randomize(coordinator, first).status_code == 200
    again = api.randomize(coordinator, first)
    assert again.status_code == 409
    assert again.json()["type"].endswith("already-randomized")
    assert api.randomize(coordinator, second).status_code == 200
    ledger = api.client.get(
        f"/api/v1/studies/{STUDY}/allocations", headers=bearer(api.admin_token)
    ).json()["items"]
    assert [(a["participant"], a["block"], a["position"]) for a in ledger] == [
        (first, 1, 1),
        (second, 1, 2),
    ]


def test_ineligible_participant_cannot_be_randomized(api):
    coordinator = api.user("coordinator", "PHL")
    response = api.client.post(
        PARTICIPANTS,
        json={"site": "PHL", "screening": dict(ELIGIBLE, smi_diagnosis=False)},
        headers=bearer(coordinator),
    )
    assert api.randomize(coordinator, response.json()["code"]).status_code == 409


def test_withdrawal_keeps_the_allocation_and_blocks_further_randomization(api):
    coordinator = api.user("coordinator", "PHL")
    randomized, enrolled = api.enroll(coordinator), api.enroll(coordinator)
    arm = api.randomize(coordinator, randomized).json()["arm"]
    for code in (randomized, enrolled):
        response = api.client.post(
            f"{PARTICIPANTS}/{code}/withdraw",
            json={"reason": "moved away"},
            headers=bearer(coordinator),
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "withdrawn"
    assert (
        api.client.get(f"{PARTICIPANTS}/{randomized}", headers=bearer(coordinator)).json()["arm"]
        == arm
    )
    assert api.randomize(coordinator, enrolled).status_code == 409
    assert api.randomize(coordinator, randomized).status_code == 409
    twice = api.client.post(
        f"{PARTICIPANTS}/{enrolled}/withdraw", json={"reason": "again"}, headers=bearer(coordinator)
    )
    assert twice.status_code == 409
    no_reason = api.client.post(
        f"{PARTICIPANTS}/{enrolled}/withdraw", json={}, headers=bearer(coordinator)
    )
    assert no_reason.status_code == 422


def test_arms_are_shown_only_to_roles_the_study_allows(api):
    statistician = api.user("statistician")
    coordinator = api.user("coordinator", "PHL")
    blinded = api.client.get(f"/api/v1/studies/{STUDY}", headers=bearer(statistician)).json()
    assert "arms" not in blinded  # a blinded answer has no field for arms at all
    seen = api.client.get(f"/api/v1/studies/{STUDY}", headers=bearer(coordinator)).json()
    assert [a["code"] for a in seen["arms"]] == ["listserv", "bulletin_board", "control"]
    assert "block_sizes" not in seen["randomization"]  # site staff could predict block ends


def test_a_blinded_study_hides_the_arm_from_its_coordinators(api):
    definition = demo_definition() | {
        "slug": "blinded",
        "blinding": {"arm_visible_to": ["admin", "unblinded_statistician"]},
    }
    admin = bearer(api.admin_token)
    assert api.client.post("/api/v1/studies", json=definition, headers=admin).status_code == 201
    api.client.post(
        "/api/v1/studies/blinded/sites", json={"code": "PHL", "name": "P"}, headers=admin
    )
    assert api.client.post("/api/v1/studies/blinded/activate", headers=admin).status_code == 200
    coordinator = api.user("coordinator", "PHL", study="blinded")
    code = api.enroll(coordinator, study="blinded")
    result = api.randomize(coordinator, code, study="blinded").json()
    assert result["status"] == "randomized"
    assert "arm" not in result and "arm_label" not in result
    shown = api.client.get(
        f"/api/v1/studies/blinded/participants/{code}", headers=bearer(coordinator)
    ).json()
    assert "arm" not in shown and "arm_label" not in shown
    assert (
        api.client.get(f"/api/v1/studies/blinded/participants/{code}", headers=admin).json()["arm"]
        is not None
    )


def test_lists_page_with_a_next_link_that_keeps_the_filters(api):
    coordinator = api.user("coordinator", "PHL")
    codes = [api.enroll(coordinator) for _ in range(5)]
    seen: list[str] = []
    url: str | None = f"{PARTICIPANTS}?status=enrolled&limit=2"
    while url:
        page = api.client.get(url, headers=bearer(coordinator)).json()
        seen += [p["code"] for p in page["items"]]
        url = page["next"]
        if url:
            assert "status=enrolled" in url and "limit=2" in url
    assert seen == codes
    assert (
        api.client.get(f"{PARTICIPANTS}?limit=1001", headers=bearer(coordinator)).status_code == 422
    )
    assert (
        api.client.get(f"{PARTICIPANTS}?cursor=garbage", headers=bearer(coordinator)).status_code
        == 422
    )


def test_missing_or_unknown_token_is_401(api):
    assert api.client.get(PARTICIPANTS).status_code == 401
    response = api.client.get(PARTICIPANTS, headers=bearer("td_not-a-token"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_healthz_answers_when_the_database_does(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_duplicate_site_code_and_study_slug_are_409(api):
    admin = bearer(api.admin_token)
    site = api.client.post(
        f"/api/v1/studies/{STUDY}/sites", json={"code": "phl", "name": "x"}, headers=admin
    )
    assert site.status_code == 409
    study = api.client.post("/api/v1/studies", json=demo_definition(), headers=admin)
    assert study.status_code == 409
