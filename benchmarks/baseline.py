"""The baseline: a minimal FastAPI app whose one endpoint inserts one row and returns it.

uvicorn imports it as `benchmarks.baseline:create_app --factory` from the project root.
Its engine is Trialdesk's own (`app.db.engine.make_engine`: the same pool and, on
SQLite, the same pragmas), so the two differ only in what they do per request.
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from app.config import Settings
from app.db.engine import make_engine

DATABASE_URL_ENV = "TRIALDESK_BENCH_BASELINE_DATABASE_URL"
GATE_ENV = "TRIALDESK_BENCH_BASELINE_GATE"  # "0": SQLite writers wait in busy_timeout


class _Base(DeclarativeBase):
    pass


class Record(_Base):
    __tablename__ = "bench_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RecordIn(BaseModel):
    kind: str
    site: str
    data: dict[str, Any] = {}


class RecordOut(BaseModel):
    id: int
    kind: str
    site: str
    data: dict[str, Any]
    created_at: datetime


def create_app() -> FastAPI:
    """The baseline server; its database URL comes from TRIALDESK_BENCH_BASELINE_DATABASE_URL."""
    engine = make_engine(Settings(database_url=os.environ[DATABASE_URL_ENV]))
    _Base.metadata.create_all(engine)
    # SQLite has one writer at a time. Like Trialdesk's write gate, writers of this process
    # queue on a lock rather than in SQLite's busy handler, whose sleeps (up to 100 ms a
    # try) would make the baseline slow and erratic and the ratio flattering.
    serialize = engine.dialect.name == "sqlite" and os.environ.get(GATE_ENV) != "0"
    write_gate: Any = threading.Lock() if serialize else contextlib.nullcontext()
    app = FastAPI(title="Trialdesk benchmark baseline")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.post("/records", status_code=201, response_model=RecordOut)
    def create_record(body: RecordIn) -> RecordOut:
        with write_gate, Session(engine, expire_on_commit=False) as session, session.begin():
            row = Record(
                kind=body.kind, site=body.site, data=body.data, created_at=datetime.now(UTC)
            )
            session.add(row)
            session.flush()
        return RecordOut(
            id=row.id, kind=row.kind, site=row.site, data=row.data, created_at=row.created_at
        )

    return app
