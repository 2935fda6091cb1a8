"""The PostgreSQL server the tests and benchmarks use: where it is, and throw-away databases."""

from __future__ import annotations

import os
import threading
import uuid

import psycopg
from sqlalchemy.engine import make_url

PG_URL = os.environ.get(
    "TRIALDESK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def conninfo(database: str | None = None) -> str:
    """A libpq URL (psycopg's) for the server, on another database if given."""
    url = make_url(PG_URL).set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def database_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the server."""
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def available() -> bool:
    try:
        with psycopg.connect(conninfo(), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def execute(sql: str) -> None:
    """Run one statement as the server's admin, outside a transaction."""
    with psycopg.connect(conninfo(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def create_database(prefix: str, *, template: str | None = None) -> str:
    """A new empty (or templated) database; return its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_database(name: str) -> None:
    execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class DatabasePool:
    """Databases made from a template one test ahead, and dropped after use, by two
    threads of this process: a test waits neither for the server to copy the template
    (0.1 s on an idle machine, half a second on a busy one) nor for it to drop the copy
    (a checkpoint of the whole server, as long again). Each database is still a fresh
    copy of the template, used by one test and then dropped.
    """

    def __init__(self, template: str, prefix: str = "trialdesk_t", ahead: int = 1) -> None:
        self.template = template
        self.prefix = prefix
        self.ahead = ahead
        self._ready: list[str] = []
        self._to_drop: list[str] = []
        self._failure: BaseException | None = None
        self._closing = False
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._make, name="pg-pool-make", daemon=True),
            threading.Thread(target=self._drop, name="pg-pool-drop", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def take(self) -> str:
        """A fresh copy of the template, for the caller alone (the next made ahead)."""
        with self._changed:
            while not self._ready and self._failure is None:
                self._changed.wait()
            if self._failure is not None:
                raise RuntimeError(f"could not copy {self.template}") from self._failure
            name = self._ready.pop(0)
            self._changed.notify_all()
            return name

    def give_back(self, name: str) -> None:
        """Drop the database (soon, in the pool's thread; before `close` returns)."""
        with self._changed:
            self._to_drop.append(name)
            self._changed.notify_all()

    def close(self) -> None:
        """Drop what was given back and what was made but not taken; stop the threads."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()
        for name in [*self._ready, *self._to_drop]:
            drop_database(name)
        self._ready.clear()
        self._to_drop.clear()

    def _make(self) -> None:
        while True:
            with self._changed:
                while not self._closing and not self._wants_one():
                    self._changed.wait()
                if self._closing:
                    return
            try:
                name = create_database(self.prefix, template=self.template)
            except BaseException as error:  # raised in the test that waits
                with self._changed:
                    self._failure = error
                    self._changed.notify_all()
                return
            with self._changed:
                self._ready.append(name)
                self._changed.notify_all()

    def _drop(self) -> None:
        while True:
            with self._changed:
                while not self._closing and not self._to_drop:
                    self._changed.wait()
                if not self._to_drop:
                    return
                name = self._to_drop[0]
            drop_database(name)  # a failure ends the thread; `close` tries again, and raises
            with self._changed:
                self._to_drop.remove(name)

    def _wants_one(self) -> bool:
        return self._failure is None and len(self._ready) < self.ahead
