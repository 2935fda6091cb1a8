"""Secrets and personal data at rest: private files, sealed secrets and stored answers,
a wrong server key refused, nothing cached, links on the configured address."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from app.config import ConfigurationError, Settings
from app.db.base import utcnow
from app.db.engine import Database
from app.db.schema import alembic_config
from app.demo import load_demo
from app.keys import Use
from app.main import create_app
from tests.helpers import STUDY, bearer, enrollment

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _fresh_sqlite(tmp_path) -> Settings:
    url = f"sqlite:///{tmp_path / 'private.db'}"
    command.upgrade(alembic_config(url), "head")
    return Settings(database_url=url, base_url="http://testserver")


def test_the_sqlite_database_its_wal_and_its_key_are_readable_by_their_owner_only(tmp_path):
    settings = _fresh_sqlite(tmp_path)
    with TestClient(create_app(settings)) as client:
        database = Database(settings)
        with database.begin() as session:
            token = load_demo(session).token
        assert (
            client.post(PARTICIPANTS, json=enrollment(), headers=bearer(token)).status_code == 201
        )
        files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("private.db"))
        assert {"private.db", "private.db-wal", "private.db-shm"} <= set(files)
        assert "private.db.key" not in files  # the key file is not beside the database
        for name in files:
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
        key_file = settings.key_file_path
        assert key_file is not None and key_file.parent != tmp_path
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        database.dispose()


def test_a_study_secret_is_stored_sealed_and_opens_only_with_the_server_key(api, db):
    with db.engine.connect() as connection:
        slug, stored, published = connection.execute(
            sa.text("SELECT slug, secret, commitment FROM studies")
        ).one()
    secret = db.keys.open(Use.study_secret, bytes(stored), context=slug)
    assert len(secret) == 32 and secret not in bytes(stored)
    assert hashlib.sha256(secret + slug.encode()).hexdigest() == published
    shown = api.client.get(f"/api/v1/studies/{STUDY}", headers=bearer(api.admin_token)).text
    assert secret.hex() not in shown and bytes(stored).hex() not in shown


def test_a_server_key_other_than_the_sealing_one_is_refused_at_start(settings, api):
    other = Settings(
        database_url=settings.database_url, secret_key="another-key-of-at-least-32-characters!"
    )
    with pytest.raises(ConfigurationError, match="not the one"), TestClient(create_app(other)):
        pass


def test_a_lost_sqlite_key_file_is_a_start_up_error_not_a_new_sequence(tmp_path):
    settings = _fresh_sqlite(tmp_path)
    database = Database(settings)
    with database.begin() as session:
        load_demo(session)  # a study, its secret sealed with the key in the key file
    database.dispose()
    key_file = settings.key_file_path
    assert key_file is not None
    key_file.rename(key_file.with_name(key_file.name + ".lost"))
    fresh = Settings(database_url=settings.database_url, base_url="http://testserver")
    with pytest.raises(ConfigurationError, match="not the one"), TestClient(create_app(fresh)):
        pass


def test_stored_answers_hold_no_personal_data_in_plain_text_and_expire(api, db):
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator, name="Robin Storedname")
    headers = {**bearer(coordinator), "Idempotency-Key": "withdraw-robin"}
    url = f"{PARTICIPANTS}/{code}/withdraw"
    first = api.client.post(url, json={"reason": "moved"}, headers=headers)
    assert first.status_code == 200 and first.json()["contact"]["name"] == "Robin Storedname"
    with db.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT response_body FROM idempotency_keys")).all()
    assert stored and all(
        "Storedname" not in row[0] and "pat@example" not in row[0] for row in stored
    )
    replay = api.client.post(url, json={"reason": "moved"}, headers=headers)
    assert replay.json() == first.json()
    with db.engine.begin() as connection:  # a day later, the key is forgotten
        connection.execute(
            sa.text("UPDATE idempotency_keys SET created_at = :then"),
            {"then": (utcnow() - timedelta(hours=25)).replace(tzinfo=None)},
        )
    other_body = api.client.post(url, json={"reason": "other"}, headers=headers)
    assert other_body.status_code == 409  # a new request now: already withdrawn, not a replay
    assert other_body.json()["type"].endswith("cannot-withdraw")


def test_api_answers_are_not_cached(api):
    response = api.client.get(f"{PARTICIPANTS}", headers=bearer(api.admin_token))
    assert response.headers["cache-control"] == "no-store"


def test_next_links_use_the_configured_address_never_the_host_header(api):
    coordinator = api.user("coordinator", "PHL")
    for _ in range(2):
        api.enroll(coordinator)
    page = api.client.get(
        f"{PARTICIPANTS}?limit=1", headers={**bearer(coordinator), "Host": "evil.example"}
    ).json()
    assert page["next"].startswith("http://testserver/api/v1/")
