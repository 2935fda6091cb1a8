"""Settings: the server key, from the environment or a key file beside SQLite."""

from __future__ import annotations

import stat

import pytest
from pydantic import ValidationError

from app.config import ConfigurationError, Settings


def test_sqlite_without_a_key_makes_a_private_key_file_once_and_reuses_it(tmp_path):
    database = tmp_path / "trial.db"
    first = Settings(database_url=f"sqlite:///{database}").server_key
    key_file = tmp_path / "trial.db.key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert Settings(database_url=f"sqlite:///{database}").server_key == first


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
