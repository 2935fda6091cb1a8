"""Reading the audit trail through the API."""

from __future__ import annotations

from tests.helpers import bearer


def test_the_whole_chain_shows_records_of_no_study_in_order(api):
    api.user("statistician", email="stat@example.org")
    trail = api.client.get("/api/v1/audit?limit=1000", headers=bearer(api.admin_token)).json()
    seqs = [r["seq"] for r in trail["items"]]
    assert seqs == list(range(1, len(seqs) + 1))
    created = [r for r in trail["items"] if r["action"] == "user.created"]
    assert any(r["changes"]["email"]["new"] == "stat@example.org" for r in created)
    for before, after in zip(trail["items"], trail["items"][1:], strict=False):
        assert after["prev_hash"] == before["hash"]


def _blind_study(api, slug: str) -> None:
    """A copy of the demo study whose blinding leaves admins out, activated, with a site."""
    from app.demo import demo_definition

    document = demo_definition() | {"slug": slug}
    document["blinding"] = {"arm_visible_to": ["unblinded_statistician"]}
    headers = bearer(api.admin_token)
    assert api.client.post("/api/v1/studies", json=document, headers=headers).status_code == 201
    site = {"code": "PHL", "name": "Philadelphia"}
    assert (
        api.client.post(f"/api/v1/studies/{slug}/sites", json=site, headers=headers).status_code
        == 201
    )
    assert api.client.post(f"/api/v1/studies/{slug}/activate", headers=headers).status_code == 200


def test_a_study_that_hides_arms_from_admins_hides_its_trail_from_them_too(api):
    # The trail holds every allocation's arm and the answers to arm-limited instruments:
    # an admin the study keeps blind reads neither its records nor its head.
    _blind_study(api, "blind-trail")
    headers = bearer(api.admin_token)
    refused = api.client.get("/api/v1/studies/blind-trail/audit", headers=headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    # The head too: its seq, against the gaps of the whole trail, would count the
    # study's hidden records.
    head = api.client.get("/api/v1/studies/blind-trail/audit/head", headers=headers)
    assert head.status_code == 403
    assert api.client.get("/api/v1/studies/peer-support/audit", headers=headers).status_code == 200
    whole = api.client.get("/api/v1/audit?limit=1000", headers=headers).json()["items"]
    entities = {r["entity_id"] for r in whole}
    assert "peer-support" in entities  # the open-label study's records are there
    assert not any(e == "blind-trail" or e.startswith("blind-trail:") for e in entities)
