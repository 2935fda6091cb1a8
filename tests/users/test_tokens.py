"""Staff tokens expire, rotate and can be revoked; users can be deactivated; guessers
are slowed down. Every such change is in the audit trail."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db.base import utcnow
from app.demo import load_demo
from app.main import create_app
from tests.helpers import bearer

ME = "/api/v1/users/me"


def _new_user(api, role: str = "statistician") -> tuple[int, str]:
    response = api.client.post(
        "/api/v1/users",
        json={"email": f"{role}-t@example.org", "name": "T", "role": role},
        headers=bearer(api.admin_token),
    )
    assert response.status_code == 201
    return response.json()["id"], response.json()["token"]


def _trail(api, action: str) -> list[dict]:
    items = api.client.get("/api/v1/audit?limit=1000", headers=bearer(api.admin_token)).json()
    return [r for r in items["items"] if r["action"] == action]


def test_a_new_token_expires_after_the_configured_lifetime(api, db):
    user_id, token = _new_user(api)
    created = api.client.get(ME, headers=bearer(token))
    assert created.status_code == 200
    with db.engine.begin() as connection:
        expires = connection.execute(
            sa.text("SELECT expires_at FROM api_tokens WHERE user_id = :u"), {"u": user_id}
        ).scalar_one()
        if isinstance(expires, str):
            expires = datetime.fromisoformat(expires)
        lifetime = expires.replace(tzinfo=None) - utcnow().replace(tzinfo=None)
        assert timedelta(days=89) < lifetime <= timedelta(days=90)
        connection.execute(
            sa.text("UPDATE api_tokens SET expires_at = created_at WHERE user_id = :u"),
            {"u": user_id},
        )
    assert api.client.get(ME, headers=bearer(token)).status_code == 401


def test_rotation_gives_a_second_valid_token_and_revocation_refuses_both(api):
    user_id, first = _new_user(api)
    admin = bearer(api.admin_token)
    rotated = api.client.post(f"/api/v1/users/{user_id}/tokens", headers=admin)
    assert rotated.status_code == 201
    second = rotated.json()["token"]
    assert second != first and rotated.json()["expires_at"]
    assert api.client.get(ME, headers=bearer(first)).status_code == 200
    assert api.client.get(ME, headers=bearer(second)).status_code == 200
    assert api.client.delete(f"/api/v1/users/{user_id}/tokens", headers=admin).status_code == 204
    assert api.client.get(ME, headers=bearer(first)).status_code == 401
    assert api.client.get(ME, headers=bearer(second)).status_code == 401
    assert [r["entity_id"] for r in _trail(api, "token.issued")] == [str(user_id)]
    revoked = _trail(api, "token.revoked")
    assert revoked[0]["changes"]["valid_tokens"] == {"old": 2, "new": 0}
    for record in _trail(api, "token.issued") + revoked:
        assert first not in str(record) and second not in str(record)


def test_a_deactivated_user_is_refused_at_once_and_the_reason_is_audited(api):
    user_id, token = _new_user(api, "coordinator")
    admin = bearer(api.admin_token)
    assert (
        api.client.post(
            f"/api/v1/users/{user_id}/deactivate", json={"reason": ""}, headers=admin
        ).status_code
        == 422
    )
    done = api.client.post(
        f"/api/v1/users/{user_id}/deactivate", json={"reason": "left the team"}, headers=admin
    )
    assert done.status_code == 200
    assert done.json()["active"] is False and done.json()["deactivated_at"]
    assert api.client.get(ME, headers=bearer(token)).status_code == 401
    record = _trail(api, "user.deactivated")[0]
    assert (record["entity_id"], record["reason"]) == (str(user_id), "left the team")


def test_the_last_active_admin_cannot_be_deactivated(api):
    admin = bearer(api.admin_token)
    me = api.client.get(ME, headers=admin).json()
    refused = api.client.post(
        f"/api/v1/users/{me['id']}/deactivate", json={"reason": "oops"}, headers=admin
    )
    assert refused.status_code == 409
    assert api.client.get(ME, headers=admin).status_code == 200


def test_an_unknown_user_is_404(api):
    admin = bearer(api.admin_token)
    assert api.client.post("/api/v1/users/999999/tokens", headers=admin).status_code == 404


def test_loading_the_demo_again_issues_an_audited_token_and_keeps_the_first(api, db):
    with db.begin() as session:
        again = load_demo(session).token
    assert again != api.admin_token
    for token in (api.admin_token, again):
        assert api.client.get(ME, headers=bearer(token)).status_code == 200
    issued = _trail(api, "token.issued")
    assert len(issued) == 1 and "demo" in issued[0]["reason"]


def test_an_address_that_sends_too_many_bad_tokens_is_slowed_down(settings, api):
    app = create_app(settings.model_copy(update={"bad_tokens_per_minute": 5}))
    with TestClient(app) as client:
        statuses = [client.get(ME, headers=bearer(f"td_guess{i}")).status_code for i in range(5)]
        assert statuses == [401] * 5
        slowed = client.get(ME, headers=bearer("td_guess6"))
        assert slowed.status_code == 429
        assert 1 <= int(slowed.headers["retry-after"]) <= 60
        # only failures are slowed down: a right token from the same address still works
        assert client.get(ME, headers=bearer(api.admin_token)).status_code == 200
        assert client.get(ME, headers=bearer("td_guess7")).status_code == 429
