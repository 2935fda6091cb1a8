"""One base URL: the settings read `.env` (variables win), `make run` writes the server's
address there, and `trialdesk users sign-in-link` prints links on it (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.auth.models import SignInLink
from app.config import Settings
from app.db.base import utcnow
from tests.live import PROJECT_ROOT

ADMIN = "admin@demo.trialdesk.org"


def test_settings_read_dot_env_in_the_working_directory_and_variables_win(tmp_path, monkeypatch):
    monkeypatch.delenv("TRIALDESK_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings().base_url == "http://127.0.0.1:8000"
    (tmp_path / ".env").write_text("OTHER=1\nTRIALDESK_BASE_URL=http://127.0.0.1:8123/\n")
    assert Settings().base_url == "http://127.0.0.1:8123"  # one form: no trailing slash
    monkeypatch.setenv("TRIALDESK_BASE_URL", "https://trial.example.org")
    assert Settings().base_url == "https://trial.example.org"
    for wrong in ("ftp://x", "127.0.0.1:8000", "https://", "http://" + "a" * 400):
        monkeypatch.setenv("TRIALDESK_BASE_URL", wrong)
        with pytest.raises(ValidationError, match="base_url"):
            Settings()


def test_serve_without_a_configured_base_url_builds_links_on_its_own_address(tmp_path, monkeypatch):
    from app.cli import _own_address

    monkeypatch.delenv("TRIALDESK_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert "base_url" not in Settings().model_fields_set  # so `serve` sets its own
    (tmp_path / ".env").write_text("TRIALDESK_BASE_URL=http://127.0.0.1:8123\n")
    assert "base_url" in Settings().model_fields_set  # .env wins over the guess
    assert _own_address("127.0.0.1", 9001) == "http://127.0.0.1:9001"
    assert _own_address("0.0.0.0", 9001) == "http://127.0.0.1:9001"
    assert _own_address("::1", 9001) == "http://[::1]:9001"


def test_make_writes_the_base_url_into_dot_env_and_keeps_the_other_lines(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("TRIALDESK_SMTP_HOST=mail.example.org\nTRIALDESK_BASE_URL=http://x:1\n")
    make = ["make", "-s", "-f", str(PROJECT_ROOT / "Makefile"), "env-file", "PORT=8123"]
    for _ in range(2):  # the second run finds it written and leaves the file alone
        subprocess.run(make, cwd=tmp_path, check=True, capture_output=True, timeout=60)
        assert env_file.read_text().splitlines() == [
            "TRIALDESK_SMTP_HOST=mail.example.org",
            "TRIALDESK_BASE_URL=http://127.0.0.1:8123",
        ]
    env_file.unlink()
    subprocess.run(make, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert env_file.read_text() == "TRIALDESK_BASE_URL=http://127.0.0.1:8123\n"
    assert env_file.stat().st_mode & 0o077 == 0  # it may hold secrets: the owner's only


def _sign_in_link(settings, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "TRIALDESK_DATABASE_URL": settings.database_url,
        "PATH": "/usr/bin:/bin",
        "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"],  # the key files of tests/conftest.py
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    command = "from app.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", command, "users", "sign-in-link", ADMIN, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _expires_in(db) -> timedelta:
    with db.session(write=False) as session:
        link = session.scalars(select(SignInLink).order_by(SignInLink.id.desc())).first()
        assert link is not None
        return link.expires_at - utcnow()


def test_sign_in_link_is_printed_on_the_configured_base_url(api, settings, db, tmp_path):
    (tmp_path / ".env").write_text("TRIALDESK_BASE_URL=http://127.0.0.1:8123\n")
    printed = _sign_in_link(settings, tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.splitlines()[-1].startswith("http://127.0.0.1:8123/console/sign-in/")
    assert "valid 15 minutes" in printed.stderr  # the default stays short
    assert timedelta(minutes=14) < _expires_in(db) <= timedelta(minutes=15)


def test_a_newcomers_sign_in_link_lasts_a_day_and_no_more_than_a_week(api, settings, db, tmp_path):
    printed = _sign_in_link(settings, tmp_path, "--valid-for", "24h")
    assert printed.returncode == 0, printed.stderr
    assert "valid 24 hours, once" in printed.stderr
    assert timedelta(hours=23) < _expires_in(db) <= timedelta(hours=24)
    for wrong in ("8d", "0m", "24", "h", "1.5h", "٣h", "9" * 30 + "m"):
        refused = _sign_in_link(settings, tmp_path, "--valid-for", wrong)
        assert refused.returncode == 1 and "--valid-for" in refused.stderr, wrong
        assert refused.stdout == ""
