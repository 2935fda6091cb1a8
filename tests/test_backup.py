"""`trialdesk backup` and `trialdesk restore`: a consistent copy of a live database,
restored into an empty one, with the same rows, a passing verify and a working API.
Backups never carry the server key: it comes back from its escrow (`keys export`)."""

from __future__ import annotations

import json
import os
import stat
import tarfile
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from app.config import Settings
from app.demo import load_demo
from app.main import create_app
from tests import pg
from tests.helpers import STUDY, bearer, enrollment
from tests.live import running_servers

runner = CliRunner()
WRITES = 40


PASSPHRASE = "correct horse battery staple"


def _env(settings: Settings) -> dict[str, str]:
    env = {"TRIALDESK_DATABASE_URL": settings.database_url}
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.key_file is not None:
        env["TRIALDESK_KEY_FILE"] = str(settings.key_file)
    return env


def _empty_target(settings: Settings, tmp_path: Path) -> Settings:
    """An empty database on "another machine": with SQLite, its key file is a new one
    (none yet); with PostgreSQL, the same TRIALDESK_SECRET_KEY."""
    if settings.database_url.startswith("sqlite"):
        return Settings(
            database_url=f"sqlite:///{tmp_path / 'restored' / 'trialdesk.db'}",
            key_file=tmp_path / "new-machine" / "server.key",
        )
    name = pg.create_database("trialdesk_restore")
    return Settings(database_url=pg.database_url(name), secret_key=settings.secret_key)


def _escrow(settings: Settings, tmp_path: Path) -> tuple[Path, Path]:
    """The server key exported for escrow: (the escrow file, the passphrase's file)."""
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text(PASSPHRASE + "\n")
    escrow = tmp_path / "escrow.json"
    arguments = ["keys", "export", str(escrow), "--passphrase-file", str(passphrase)]
    exported = runner.invoke(cli, arguments, env=_env(settings))
    assert exported.exit_code == 0, exported.output
    return escrow, passphrase


def _keep_writing(url: str, token: str, halfway: threading.Event, done: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=60, headers=bearer(token)) as client:
        for i in range(WRITES):
            enrolled = client.post(f"/api/v1/studies/{STUDY}/participants", json=enrollment())
            code = enrolled.json()["code"]
            client.post(f"/api/v1/studies/{STUDY}/participants/{code}/randomize")
            done.append(i)
            if i == WRITES // 2:
                halfway.set()


@pytest.mark.slow
def test_a_backup_of_a_live_database_restores_into_an_empty_one(settings, db, tmp_path):
    with db.begin() as session:
        token = load_demo(session).token
    archive = tmp_path / "backup.tar"
    done: list[int] = []
    with running_servers(_env(settings)) as (url,):
        halfway = threading.Event()
        writer = threading.Thread(target=_keep_writing, args=(url, token, halfway, done))
        writer.start()
        assert halfway.wait(timeout=120)
        made = runner.invoke(cli, ["backup", str(archive)], env=_env(settings))
        writer.join(timeout=300)
    assert made.exit_code == 0, made.output
    assert len(done) == WRITES  # the server went on writing while the copy was made
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        members = tar.getmembers()
    assert manifest["with_key"] is False
    assert sorted(m.name for m in members) == ["database." + _data(settings), "manifest.json"]
    assert all(stat.S_IMODE(m.mode) == 0o600 for m in members), [oct(m.mode) for m in members]
    assert all(m.uname == "" and m.uid == 0 for m in members)  # no local user named

    target = _empty_target(settings, tmp_path)
    escrow, passphrase = _escrow(settings, tmp_path)
    restore = ["restore", str(archive), "--reason", "restore drill after a disk failure"]
    if target.secret_key is None:  # SQLite: the key comes back from its escrow
        restore += ["--key-escrow", str(escrow), "--passphrase-file", str(passphrase)]
    restored = runner.invoke(cli, restore, env=_env(target))
    assert restored.exit_code == 0, restored.output
    again = runner.invoke(
        cli,
        ["restore", str(archive), "--reason", "restore drill after a disk failure"],
        env=_env(target),
    )
    assert target.key_file is None or target.key_file.exists()
    assert again.exit_code == 1 and "not empty" in again.output

    verified = runner.invoke(cli, ["verify", "--study", STUDY], env=_env(target))
    assert verified.exit_code == 0, verified.output
    with TestClient(create_app(target.model_copy(update={"scheduler": False}))) as client:
        listed = client.get(
            f"/api/v1/studies/{STUDY}/participants?limit=1000", headers=bearer(token)
        )
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == manifest["counts"]["participants"]
    if not target.database_url.startswith("sqlite"):
        pg.drop_database(target.database_url.rsplit("/", 1)[1])


def test_a_backup_never_overwrites_and_restore_refuses_the_wrong_key(settings, db, tmp_path):
    with db.begin() as session:
        load_demo(session)
    archive = tmp_path / "backup.tar"
    assert runner.invoke(cli, ["backup", str(archive)], env=_env(settings)).exit_code == 0
    twice = runner.invoke(cli, ["backup", str(archive)], env=_env(settings))
    assert twice.exit_code == 1 and "exists" in twice.output
    target = _empty_target(settings, tmp_path)
    wrong = {**_env(target), "TRIALDESK_SECRET_KEY": "a-different-key-of-32-characters-or-more"}
    refused = runner.invoke(
        cli, ["restore", str(archive), "--reason", "restore drill after a disk failure"], env=wrong
    )
    assert refused.exit_code == 1 and "another server key" in refused.output
    if not target.database_url.startswith("sqlite"):
        pg.drop_database(target.database_url.rsplit("/", 1)[1])


def _data(settings: Settings) -> str:
    return "sqlite" if settings.database_url.startswith("sqlite") else "pgdump"


def test_the_database_file_in_a_backup_is_private_whatever_its_mode_on_disk(settings, db, tmp_path):
    with db.begin() as session:
        load_demo(session)
    if settings.sqlite_path is not None:
        settings.sqlite_path.chmod(0o644)  # as an old installation may have it
    archive = tmp_path / "backup.tar"
    assert runner.invoke(cli, ["backup", str(archive)], env=_env(settings)).exit_code == 0
    with tarfile.open(archive) as tar:
        modes = {m.name: stat.S_IMODE(m.mode) for m in tar.getmembers()}
        names = tar.getnames()
    assert modes == {"manifest.json": 0o600, f"database.{_data(settings)}": 0o600}
    assert not any("key" in name for name in names)
