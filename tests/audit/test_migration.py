"""The 09:03 revision: a plain SHA-256 trail re-MACed and sealed, and back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select

from app.audit import service as audit
from app.audit.models import AuditRecord
from app.db.schema import alembic_config

BEFORE = "fc929eb8918c"


def _trail(db) -> list[tuple]:
    with db.session(write=False) as session:
        return [
            (r.seq, r.action, r.actor, r.reason, r.changes)
            for r in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        ]


def test_a_sha256_trail_is_re_maced_and_sealed_and_verifies(settings, db, api):
    coordinator = api.user("coordinator", "PHL")
    api.randomize(coordinator, api.enroll(coordinator))
    before = _trail(db)
    db.dispose()
    config = alembic_config(settings.database_url, server_key=settings.server_key)
    command.downgrade(config, BEFORE)
    with db.engine.connect() as connection:
        plain = connection.exec_driver_sql("SELECT changes FROM audit_records").scalars().all()
    assert any("pat@example.org" in str(c) for c in plain)  # the old trail held it in plain
    command.upgrade(config, "head")
    assert _trail(db) == before
    with db.session(write=False) as session:
        assert audit.verify_chain(session) == []
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT * FROM audit_records").mappings().all()
    assert not any("pat@example.org" in str(dict(r)) for r in rows)


def test_a_record_that_did_not_verify_in_the_old_chain_is_not_laundered(settings, db, api):
    api.user("statistician")
    db.dispose()
    config = alembic_config(settings.database_url, server_key=settings.server_key)
    command.downgrade(config, BEFORE)
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_records DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_records_no_update")
        connection.exec_driver_sql("UPDATE audit_records SET actor = 'forged' WHERE seq = 2")
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_records ENABLE TRIGGER USER")
    command.upgrade(config, "head")
    with db.session(write=False) as session:
        breaks = audit.verify_chain(session)
    assert [(b.seq, b.problem) for b in breaks] == [(2, "content does not match its hash")]
