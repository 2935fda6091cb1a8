"""Backups: a consistent copy of a live database, and restoring one into an empty one.

A backup is one tar file (readable by its owner only) holding `manifest.json` (format,
backend, schema revision, the server key's fingerprint, every table's row count) and
the database: a SQLite file made with SQLite's online backup API (never a copy of a
live WAL file), or a `pg_dump` archive. The secrets inside are sealed with the server
key, so the backup names the key it needs by its fingerprint, and never carries it: a
stolen backup opens nothing sealed. The key is kept apart (`trialdesk keys export`
writes it, encrypted with a passphrase, for escrow; `trialdesk keys import` puts it
back before a restore: docs/keys.md). Every member of the tar is readable by its owner
only (0600), whatever the mode of the files it was made from.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, func, inspect, select, table
from sqlalchemy.engine import make_url

from app import keyfile
from app.config import Settings
from app.db.engine import make_engine
from app.db.schema import current_revision
from app.keys import Keys, fingerprint_of

FORMAT = "trialdesk-backup"
VERSION = 1
TOOL_TIMEOUT_S = 3600.0  # pg_dump / pg_restore of a large database


class BackupError(RuntimeError):
    """The backup or the restore cannot be made; the message says why."""


@dataclass(frozen=True)
class Manifest:
    backend: str
    revision: str | None
    fingerprint: str
    counts: dict[str, int]
    created_at: str
    with_key: bool

    def to_json(self) -> bytes:
        return json.dumps(
            {"format": FORMAT, "version": VERSION, **self.__dict__}, indent=2
        ).encode()


def backup(settings: Settings, out: Path) -> Manifest:
    """Write a backup of the live database of `settings` to `out` (a new file)."""
    if out.exists():
        raise BackupError(f"{out} exists; a backup never overwrites a file")
    engine = make_engine(settings)
    try:
        with tempfile.TemporaryDirectory(prefix="trialdesk-backup-") as tmp:
            if settings.is_sqlite:
                data, name = Path(tmp) / "database.sqlite", "database.sqlite"
                _sqlite_copy(settings, data)
                copy = make_engine(Settings(database_url=f"sqlite:///{data}"))
                try:
                    revision, counts = _revision(copy), _counts(copy)
                finally:
                    copy.dispose()
            else:
                data, name = Path(tmp) / "database.pgdump", "database.pgdump"
                revision, counts = _pg_dump(settings, engine, data)
            manifest = Manifest(
                backend="sqlite" if settings.is_sqlite else "postgresql",
                revision=revision,
                fingerprint=_recorded_fingerprint(engine) or Keys(settings.server_key).fingerprint,
                counts=counts,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                with_key=False,
            )
            _write_archive(out, manifest, data, name)
    finally:
        engine.dispose()
    return manifest


def restore(settings: Settings, archive: Path, *, reason: str) -> Manifest:
    """Restore `archive` into the empty database of `settings`; check the row counts;
    migrate it and re-anchor its audit trail (`reason`: why it is put back)."""
    with tempfile.TemporaryDirectory(prefix="trialdesk-restore-") as tmp:
        manifest, data, key = _read_archive(archive, Path(tmp))
        backend = "sqlite" if settings.is_sqlite else "postgresql"
        if manifest.backend != backend:
            raise BackupError(f"a {manifest.backend} backup restores into {manifest.backend} only")
        _check_key(settings, manifest, key)
        engine = make_engine(settings)
        try:
            if inspect(engine).get_table_names():
                raise BackupError("the target database is not empty; restore into an empty one")
            engine.dispose()
            if settings.is_sqlite:
                _sqlite_restore(data, settings)
            else:
                _run(
                    [*_pg_tool("pg_restore", settings), "--no-owner", "--exit-on-error", str(data)],
                    settings,
                )
            counts = _counts(engine)
        finally:
            engine.dispose()
    if counts != manifest.counts:
        raise BackupError(
            f"restored row counts {counts} differ from the backup's {manifest.counts}"
        )
    _reanchor(settings, manifest, archive, reason)
    return manifest


def _reanchor(settings: Settings, manifest: Manifest, archive: Path, reason: str) -> None:
    """Migrate the restored database to this release, then audit what was restored and
    why: the anchors outside the database mark the break, so `verify` no longer expects
    the history after the backup's head (see `audit.anchors`)."""
    from alembic import command

    from app.audit import service as audit
    from app.db.engine import Database
    from app.db.schema import alembic_config

    command.upgrade(alembic_config(settings.database_url, server_key=settings.server_key), "head")
    db = Database(settings)
    try:
        db.check_server_key()
        with db.begin() as session:
            audit.record_restore(
                session,
                reason=reason,
                backup={
                    "file": archive.name,
                    "created_at": manifest.created_at,
                    "revision": manifest.revision,
                },
            )
    finally:
        db.dispose()


def _sqlite_copy(settings: Settings, target: Path) -> None:
    source_path = settings.sqlite_path
    if source_path is None or not source_path.exists():
        raise BackupError("no SQLite database file to back up")
    timeout = settings.db_lock_timeout_ms / 1000
    source = sqlite3.connect(source_path, timeout=timeout)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # a consistent snapshot, even while the server writes
    finally:
        copy.close()
        source.close()


def _pg_dump(settings: Settings, engine: Engine, data: Path) -> tuple[str | None, dict[str, int]]:
    """Dump and count from one snapshot: a transaction exports it, counts in it, and
    pg_dump reads the same snapshot while the transaction stays open."""
    connect = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with connect as connection, connection.begin():
        snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        revision = current_revision(connection)
        counts = _counts_on(connection)
        command = [*_pg_tool("pg_dump", settings), "--format=custom", f"--file={data}"]
        _run([*command, f"--snapshot={snapshot}"], settings)
    return revision, counts


def _sqlite_restore(data: Path, settings: Settings) -> None:
    target = settings.sqlite_path
    assert target is not None
    make_engine(settings).dispose()  # creates the file, readable by its owner only
    source = sqlite3.connect(data)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


def _check_key(settings: Settings, manifest: Manifest, key: bytes | None) -> None:
    """The backup's key must be at hand (never created here: a new random key would
    open nothing). A backup of earlier versions may carry the key: it is put into the
    key file if there is none."""
    path = settings.key_file_path
    if settings.secret_key is not None:
        keys = [settings.secret_key.get_secret_value().encode()]
    elif path is None:
        raise BackupError("set TRIALDESK_SECRET_KEY or TRIALDESK_KEY_FILE: the backup's key")
    else:
        found = keyfile.read(path)
        if found is None and key is not None:
            keyfile.write(path, [key], replace=False, note=f"restored from a backup of {_now()}")
            found = [key]
        if found is None:
            raise BackupError(
                f"no server key: the key file {path} does not exist. Backups never carry the "
                "key: put the escrowed key back first (`trialdesk keys import ESCROW`), or set "
                "TRIALDESK_KEY_FILE / TRIALDESK_SECRET_KEY to the backed-up database's key"
            )
        keys = found
    if manifest.fingerprint not in {fingerprint_of(k) for k in keys}:
        where = f"the key file {path}" if path is not None else "TRIALDESK_SECRET_KEY"
        raise BackupError(
            f"this backup's secrets are sealed with another server key than {where} holds "
            f"(the backup needs the key of fingerprint {manifest.fingerprint[:16]}...)"
        )


def _recorded_fingerprint(engine: Engine) -> str | None:
    """The fingerprint the database records (after a rotation: the new key's)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("server_key"):
            return None
        query = "SELECT fingerprint FROM server_key WHERE id = 1"
        found = connection.exec_driver_sql(query).scalar_one_or_none()
        return str(found) if found is not None else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return _counts_on(connection)


def _counts_on(connection: Connection) -> dict[str, int]:
    names = sorted(inspect(connection).get_table_names())
    return {
        name: int(connection.execute(select(func.count()).select_from(table(name))).scalar_one())
        for name in names
    }


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return current_revision(connection)


def _write_archive(out: Path, manifest: Manifest, data: Path, name: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
        _add_bytes(tar, "manifest.json", manifest.to_json())
        tar.add(data, arcname=name, filter=_private)


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A member readable by its owner only, naming no local user."""
    info.mode = 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    info = _private(tarfile.TarInfo(name))
    info.size = len(content)
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(content))


def _read_archive(archive: Path, into: Path) -> tuple[Manifest, Path, bytes | None]:
    try:
        with tarfile.open(archive, mode="r") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            raw = _member(tar, members, "manifest.json")
            document = json.loads(raw)
            if document.get("format") != FORMAT or document.get("version") != VERSION:
                raise BackupError(f"{archive} is not a Trialdesk backup this version reads")
            document.pop("format")
            document.pop("version")
            manifest = Manifest(**document)
            name = "database.sqlite" if manifest.backend == "sqlite" else "database.pgdump"
            data = into / name
            data.write_bytes(_member(tar, members, name))
            key = _member(tar, members, "server.key").strip() if manifest.with_key else None
    except (tarfile.TarError, OSError, ValueError, TypeError, KeyError) as exc:
        raise BackupError(f"{archive} cannot be read as a backup: {exc}") from None
    return manifest, data, key


def _member(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    member = members.get(name)
    handle = tar.extractfile(member) if member is not None else None
    if handle is None:
        raise BackupError(f"the backup has no {name}")
    return handle.read()


def _pg_tool(tool: str, settings: Settings) -> list[str]:
    url = make_url(settings.database_url)
    libpq = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return [tool, f"--dbname={libpq}"]


def _run(command: list[str], settings: Settings) -> None:
    env = dict(os.environ)
    password = make_url(settings.database_url).password
    if password:
        env["PGPASSWORD"] = str(password)  # never on the command line, where `ps` shows it
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise BackupError(f"{command[0]} is not installed (PostgreSQL's client tools)") from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"{command[0]} did not finish within {TOOL_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[-2000:]}")
