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
