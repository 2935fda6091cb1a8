"""Staff users: created by admins with their sites; the token shown once."""

from __future__ import annotations

from tests.helpers import STUDY, bearer


def test_an_admin_creates_a_coordinator_of_sites_who_then_reads_their_own_record(api):
    admin = bearer(api.admin_token)
    body = {
        "email": "Casey@PHL.example.org",
        "name": "Casey",
        "role": "coordinator",
        "sites": [{"study": STUDY, "site": "PHL"}, {"study": STUDY, "site": "PIT"}],
    }
    created = api.client.post("/api/v1/users", json=body, headers=admin)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("td_")
    me = api.client.get("/api/v1/users/me", headers=bearer(token)).json()
    assert me["email"] == "casey@phl.example.org"  # emails are kept in lower case
    assert me["sites"] == [{"study": STUDY, "site": "PHL"}, {"study": STUDY, "site": "PIT"}]
    assert "token" not in me


def test_unknown_sites_and_sites_for_roles_without_them_are_422_by_path(api):
    admin = bearer(api.admin_token)
    response = api.client.post(
        "/api/v1/users",
        json={
            "email": "x@example.org",
            "name": "X",
            "role": "statistician",
            "sites": [{"study": STUDY, "site": "NOPE"}, {"study": "nope", "site": "PHL"}],
        },
        headers=admin,
    )
    assert response.status_code == 422
    paths = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert paths == {("body", "sites"), ("body", "sites", 0, "site"), ("body", "sites", 1, "study")}


def test_a_second_user_with_the_same_email_is_409(api):
    api.user("statistician", email="same@example.org")
    again = api.client.post(
        "/api/v1/users",
        json={"email": "SAME@example.org", "name": "Again", "role": "statistician"},
        headers=bearer(api.admin_token),
    )
    assert again.status_code == 409
