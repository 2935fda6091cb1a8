"""Idempotency-Key: a retried POST answers what the first got, and does nothing twice."""

from __future__ import annotations

import json

import sqlalchemy as sa

from tests.helpers import STUDY, bearer, enrollment

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _count(db, table: str) -> int:
    with db.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def _user_id(api, token: str) -> int:
    me = api.client.get("/api/v1/users/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    return int(me.json()["id"])


def test_idempotency_key_replays_the_first_response_and_creates_nothing_new(api, db):
    coordinator = api.user("coordinator", "PHL")
    headers = {**bearer(coordinator), "Idempotency-Key": "enroll-robin-1"}
    first = api.client.post(PARTICIPANTS, json=enrollment(name="Robin"), headers=headers)
    again = api.client.post(PARTICIPANTS, json=enrollment(name="Robin"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert _count(db, "participants") == 1
    different = api.client.post(PARTICIPANTS, json=enrollment(name="Sam"), headers=headers)
    assert different.status_code == 409
    assert _count(db, "participants") == 1


def test_idempotency_key_of_a_failed_request_can_be_retried(api, db):
    coordinator = api.user("coordinator", "PHL")
    headers = {**bearer(coordinator), "Idempotency-Key": "retry-me"}
    bad = api.client.post(PARTICIPANTS, json=enrollment(consent={"version": "0"}), headers=headers)
    assert bad.status_code == 422
    assert _count(db, "idempotency_keys") == 0
    same = api.client.post(PARTICIPANTS, json=enrollment(consent={"version": "0"}), headers=headers)
    assert same.status_code == 422


def test_a_request_whose_key_is_still_running_gets_409(api, db):
    coordinator = api.user("coordinator", "PHL")
    body = enrollment()
    import json as _json

    from app.db.base import utcnow
    from app.idempotency.models import IdempotencyKey
    from app.idempotency.service import fingerprint, user_scope

    with db.begin() as session:  # what a request still in progress leaves behind
        session.add(
            IdempotencyKey(
                scope=user_scope(_user_id(api, coordinator)),
                key="in-flight",
                fingerprint=fingerprint(
                    method="POST", path=PARTICIPANTS, body=_json.dumps(body).encode()
                ),
                created_at=utcnow(),
            )
        )
    response = api.client.post(
        PARTICIPANTS,
        content=_json.dumps(body),
        headers={
            **bearer(coordinator),
            "Idempotency-Key": "in-flight",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("idempotency-key-in-progress")
    assert _count(db, "participants") == 0


def test_a_claim_abandoned_by_a_crashed_request_is_taken_over_once(api, db):
    import json as _json
    from datetime import timedelta

    from app.db.base import utcnow
    from app.idempotency.models import IdempotencyKey
    from app.idempotency.service import ABANDONED_AFTER, fingerprint, user_scope

    coordinator = api.user("coordinator", "PHL")
    body = enrollment()
    with db.begin() as session:  # what a process that died mid-request leaves behind
        session.add(
            IdempotencyKey(
                scope=user_scope(_user_id(api, coordinator)),
                key="crashed",
                fingerprint=fingerprint(
                    method="POST", path=PARTICIPANTS, body=_json.dumps(body).encode()
                ),
                created_at=utcnow() - ABANDONED_AFTER - timedelta(seconds=1),
            )
        )
    headers = {**bearer(coordinator), "Idempotency-Key": "crashed"}
    first = api.client.post(PARTICIPANTS, json=body, headers=headers)
    again = api.client.post(PARTICIPANTS, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert _count(db, "participants") == 1


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

    body = enrollment()
    first = api.client.post(PARTICIPANTS, content=json.dumps(body), headers=headers)
    second = api.client.post(PARTICIPANTS, content=json.dumps(body, indent=4), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()


READ_ONLY_POSTS = {"/api/v1/studies/{slug}/simulate"}
# What a survey link reaches: no staff account, and a repeated submission is refused
# (409) rather than repeated, so a retry is safe without a key. The survey pages' form
# cannot send a header at all: saving a page twice stores the same answers.
LINK_POSTS = ("/api/v1/surveys/", "/s/")
# The SMS provider's signed webhooks: it sends no key, and each is idempotent by its own
# id (a delivery status is set, not added; a received text is recorded once per
# MessageSid), so a webhook delivered twice changes nothing the second time.
PROVIDER_POSTS = ("/api/v1/sms/",)


def test_every_post_that_changes_something_takes_an_idempotency_key(client):
    paths = client.app.openapi()["paths"]
    for path, item in paths.items():
        if (
            "post" not in item
            or path in READ_ONLY_POSTS
            or path.startswith(LINK_POSTS + PROVIDER_POSTS)
        ):
            continue
        headers = {p["name"] for p in item["post"].get("parameters", []) if p["in"] == "header"}
        assert "Idempotency-Key" in headers, path


def test_a_replayed_randomization_gives_the_same_slot_and_takes_no_other(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    api.complete_survey(code)  # the demo study requires the baseline first
    headers = {**bearer(coordinator), "Idempotency-Key": "randomize-once"}
    url = f"{PARTICIPANTS}/{code}/randomize"
    first = api.client.post(url, headers=headers)
    again = api.client.post(url, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert _count(db, "allocations") == 1


def test_a_key_longer_than_255_characters_is_refused_after_authentication(api):
    coordinator = api.user("coordinator", "PHL")
    long_key = {"Idempotency-Key": "k" * 256}
    assert api.client.post(PARTICIPANTS, json=enrollment(), headers=long_key).status_code == 401
    refused = api.client.post(
        PARTICIPANTS, json=enrollment(), headers={**bearer(coordinator), **long_key}
    )
    assert refused.status_code == 422
    assert _count_participants(api) == 0


def _count_participants(api) -> int:
    admin = bearer(api.admin_token)
    return len(api.client.get(PARTICIPANTS, headers=admin).json()["items"])


def test_a_key_belongs_to_the_user_whichever_token_sends_it(api, db):
    """After a token rotation, the same user's retry gets the first answer again: one
    participant, not two."""
    coordinator = api.user("coordinator", "PHL")
    user_id = _user_id(api, coordinator)
    first = api.client.post(
        PARTICIPANTS,
        json=enrollment(name="Robin"),
        headers={**bearer(coordinator), "Idempotency-Key": "rotated"},
    )
    assert first.status_code == 201, first.text
    rotated = api.client.post(f"/api/v1/users/{user_id}/tokens", headers=bearer(api.admin_token))
    assert rotated.status_code == 201, rotated.text
    new_token = rotated.json()["token"]
    assert new_token != coordinator
    again = api.client.post(
        PARTICIPANTS,
        json=enrollment(name="Robin"),
        headers={**bearer(new_token), "Idempotency-Key": "rotated"},
    )
    assert again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert _count(db, "participants") == 1


def test_another_users_same_key_is_another_request(api, db):
    """Another user sending the same key (and body) gets its own processing, never the
    first user's answer."""
    first_user = api.user("coordinator", "PHL")
    second_user = api.user("coordinator", "PHL")
    answers = []
    for token in (first_user, second_user):
        answer = api.client.post(
            PARTICIPANTS,
            json=enrollment(name="Robin"),
            headers={**bearer(token), "Idempotency-Key": "shared-key"},
        )
        assert answer.status_code == 201, answer.text
        assert "idempotent-replayed" not in answer.headers
        answers.append(answer.json())
    assert answers[0]["code"] != answers[1]["code"]
    assert _count(db, "participants") == 2
    with db.engine.connect() as connection:
        scopes = connection.execute(
            sa.text("SELECT scope FROM idempotency_keys WHERE key = 'shared-key' ORDER BY id")
        ).scalars()
        assert list(scopes) == [
            f"user:{_user_id(api, first_user)}",
            f"user:{_user_id(api, second_user)}",
        ]
