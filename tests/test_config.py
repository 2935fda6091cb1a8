"""Settings: the server key, from the environment or a key file (never beside SQLite)."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from pydantic import ValidationError

from app.config import ConfigurationError, Settings, default_key_file


def test_sqlite_without_a_key_makes_a_private_key_file_once_and_reuses_it(tmp_path):
    database = tmp_path / "trial.db"
    settings = Settings(database_url=f"sqlite:///{database}")
    first = settings.server_key
    key_file = settings.key_file_path
    assert key_file is not None and key_file.exists()
    assert key_file.parent.resolve() != tmp_path.resolve()  # not beside the database
    assert key_file.is_relative_to(os.environ["XDG_CONFIG_HOME"])  # the user's config folder
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert not (tmp_path / "trial.db.key").exists()
    assert len(first) >= 32
    assert Settings(database_url=f"sqlite:///{database}").server_key == first
    other = Settings(database_url=f"sqlite:///{tmp_path / 'other.db'}")
    assert other.key_file_path != key_file and other.server_key != first  # one per database


def test_a_key_file_of_earlier_versions_beside_the_database_is_still_read_with_a_warning(
    tmp_path, caplog
):
    database = tmp_path / "old.db"
    (tmp_path / "old.db.key").write_text("an-old-key-of-earlier-versions-0123456789abcdef\n")
    with caplog.at_level(logging.WARNING, logger="trialdesk.keys"):
        key = Settings(database_url=f"sqlite:///{database}").server_key
    assert key == b"an-old-key-of-earlier-versions-0123456789abcdef"
    assert "beside the database" in caplog.text and "mv " in caplog.text
    moved = default_key_file(database)
    moved.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "old.db.key").rename(moved)  # as the warning says
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trialdesk.keys"):
        assert Settings(database_url=f"sqlite:///{database}").server_key == key
    assert caplog.text == ""


def test_a_key_file_set_in_the_database_folder_is_refused(tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'trial.db'}", key_file=tmp_path / "server.key"
    )
    with pytest.raises(ConfigurationError, match="database's folder"):
        _ = settings.server_key
    assert not (tmp_path / "server.key").exists()


def test_key_file_is_used_with_postgresql_too(tmp_path):
    key_file = tmp_path / "keys" / "server.key"
    settings = Settings(database_url="postgresql://u@127.0.0.1/x", key_file=key_file)
    key = settings.server_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Settings(database_url="postgresql://u@127.0.0.1/x", key_file=key_file).server_key == key


def test_postgresql_requires_a_key(tmp_path):
    settings = Settings(database_url="postgresql://u@127.0.0.1/x", secret_key=None)
    with pytest.raises(ConfigurationError):
        _ = settings.server_key
    assert settings.database_url.startswith("postgresql+psycopg://")


def test_a_short_key_is_refused():
    with pytest.raises(ValidationError):
        Settings(secret_key="too short")


def test_settings_come_from_trialdesk_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("TRIALDESK_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("TRIALDESK_BASE_URL", "https://trials.example.org")
    monkeypatch.setenv("TRIALDESK_SECRET_KEY", "k" * 40)
    settings = Settings()
    assert settings.base_url == "https://trials.example.org"
    assert settings.server_key == b"k" * 40
    assert settings.sqlite_path == tmp_path / "env.db"
