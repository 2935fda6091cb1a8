"""Engines and session factories for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.db.sealed import attach_keys
from app.db.server_key import (
    KEYS_INFO,
    check_server_key,
    keep_stable_keys,
    keys_for,
    sealing_keys_of,
)
from app.keys import Keys
from app.metrics import EVENTS, PENDING_EVENTS, WAITS

WRITE_OPTION = "trialdesk_write"
STATE_DIR_INFO = "trialdesk_state_dir"  # where the audit trail's anchors live
MAX_CONCURRENT_REQUESTS = 32  # below anyio's default of 40 worker threads


class Database:
    """One engine and two session factories: reads, and writes that lock at BEGIN."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.probe = make_engine(settings, probe=True)  # for /healthz and /readyz
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.keys = keys_for(settings)
        attach_keys(self.engine, self.keys)  # the sealed columns of research data use them
        info = {KEYS_INFO: self.keys, STATE_DIR_INFO: settings.state_folder}
        self._read = sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._write = sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}),
            expire_on_commit=False,
            info=info,
        )
        if self.is_sqlite:
            _gate_write_transactions(self._write, timeout_s=settings.db_lock_timeout_ms / 1000)
        _count_committed_events(self._write)
        _seal_with_the_current_key(self._write, self.keys)

    @property
    def request_slots(self) -> int:
        """How many requests one process may work on at once: within the connection
        pool, and below the worker threads (see `api.deps.request_slot`)."""
        pool = self.settings.db_pool_size + self.settings.db_max_overflow
        return min(pool, MAX_CONCURRENT_REQUESTS)

    def session(self, *, write: bool) -> Session:
        """A new session; `write` sessions take the database write lock when they begin."""
        return (self._write if write else self._read)()

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A write transaction for the CLI and scripts: commit on success, else roll back."""
        with self.session(write=True) as session, session.begin():
            yield session

    def check_server_key(self) -> None:
        """Refuse to work with a server key other than the one the secrets are sealed
        with (ConfigurationError); record it on first use."""
        with self.begin() as session:
            check_server_key(session, self.keys)
            keep_stable_keys(session, self.keys)
        self.keys.checked = True

    def dispose(self) -> None:
        self.engine.dispose()
        self.probe.dispose()


_GATE = "trialdesk_write_gate"


def _gate_write_transactions(factory: sessionmaker[Session], *, timeout_s: float) -> None:
    """SQLite has one writer at a time. Write transactions of this process queue on a
    lock, which wakes them in turn, rather than in SQLite's busy handler, which polls with
    sleeps (other processes still wait on SQLite's own lock). The lock is taken when a
    transaction begins, in the thread that begins it, and let go when it ends, so it
    covers exactly the time SQLite's own write lock is held (BEGIN IMMEDIATE to COMMIT).
    """
    gate = threading.Lock()

    @event.listens_for(factory, "after_transaction_create")
    def _take(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None or _GATE in session.info:
            return  # a savepoint within a transaction that holds the gate already
        with WAITS.labels("sqlite_write_gate").time():
            if not gate.acquire(timeout=timeout_s):
                raise TimeoutError("timed out waiting for the database write lock")
        session.info[_GATE] = transaction

    @event.listens_for(factory, "after_transaction_end")
    def _let_go(session: Session, transaction: SessionTransaction) -> None:
        if session.info.get(_GATE) is transaction:
            del session.info[_GATE]
            gate.release()


def _seal_with_the_current_key(factory: sessionmaker[Session], keys: Keys) -> None:
    """Before a transaction's first flush, learn which key of the ring the database
    says seals (and share the lock on that row): the sealed columns seal with the ring's
    current key, which a key rotation in another process may have changed since. (A
    session given other keys, as `trialdesk keys rotate` does, chooses for itself.)"""

    @event.listens_for(factory, "before_flush")
    def _check(session: Session, *_: Any) -> None:
        if (session.new or session.dirty) and session.info.get(KEYS_INFO) is keys:
            with session.no_autoflush:
                sealing_keys_of(session)

    @event.listens_for(factory, "do_orm_execute")
    def _check_statement(state: ORMExecuteState) -> None:
        # Plain UPDATE and INSERT statements (the outbox marks a failure so) seal too.
        if (state.is_update or state.is_insert) and state.session.info.get(KEYS_INFO) is keys:
            sealing_keys_of(state.session)


def _count_committed_events(factory: sessionmaker[Session]) -> None:
    """Count the audit actions of a transaction once it has committed, not before."""

    @event.listens_for(factory, "after_commit")
    def _count(session: Session) -> None:
        for action in session.info.pop(PENDING_EVENTS, ()):
            EVENTS.labels(action).inc()

    @event.listens_for(factory, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(PENDING_EVENTS, None)


def make_engine(settings: Settings, *, probe: bool = False) -> Engine:
    """Create the engine with the per-backend settings Trialdesk relies on.

    Every wait is bounded: for a pooled connection (`db_pool_timeout_s`), to connect,
    for a lock (`db_lock_timeout_ms`: PostgreSQL's lock_timeout, SQLite's busy timeout)
    and, on PostgreSQL, for a statement (`db_statement_timeout_ms`). A `probe` engine
    (for `/healthz` and `/readyz`) keeps no pool: it never queues behind the requests
    holding the pool's connections, and answers within a few seconds whatever they do.
    """
    url = make_url(settings.database_url)
    lock_ms = min(settings.db_lock_timeout_ms, 2000) if probe else settings.db_lock_timeout_ms
    pool: dict[str, Any] = (
        {"poolclass": NullPool}
        if probe
        else {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout_s,
        }
    )
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _create_private_file(Path(url.database))
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": lock_ms / 1000},
            hide_parameters=True,  # error messages would otherwise carry names and emails
            **pool,
        )
        _configure_sqlite(engine, busy_timeout_ms=lock_ms)
        return engine
    statement_ms = 2000 if probe else settings.db_statement_timeout_ms
    return create_engine(
        url,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_s,
            "options": f"-c lock_timeout={lock_ms} -c statement_timeout={statement_ms}",
        },
        pool_pre_ping=not probe,
        hide_parameters=True,
        **pool,
    )


def _create_private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (SQLite gives its WAL and
    shared-memory files the same mode); an existing file is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    """WAL, full sync, foreign keys, and BEGIN IMMEDIATE for writers.

    pysqlite would BEGIN lazily (deferred), so two writers could both read and then
    fail to upgrade their locks; BEGIN IMMEDIATE makes the second writer wait at BEGIN.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
