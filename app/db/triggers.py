"""Append-only tables (the allocation ledger, the audit trail) refuse UPDATE and DELETE
through triggers; the few rewrites the product makes (re-sealing after a key rotation)
set them aside inside their own transaction only."""

from __future__ import annotations

from sqlalchemy import Table, text
from sqlalchemy.orm import Session


class triggers_lifted:
    """Set aside a table's own triggers (append-only guards) until the block ends."""

    def __init__(self, session: Session, table: Table) -> None:
        self.session, self.table = session, table
        self.saved: list[str] = []
        self.postgresql = session.get_bind().dialect.name == "postgresql"

    def __enter__(self) -> None:
        name = self.table.name
        if self.postgresql:
            count = self.session.execute(
                text(
                    "SELECT count(*) FROM pg_trigger "
                    "WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal"
                ),
                {"t": name},
            ).scalar_one()
            if count:
                self.saved = [name]
                self.session.execute(text(f'ALTER TABLE "{name}" DISABLE TRIGGER USER'))
            return
        triggers = self.session.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
            {"t": name},
        ).all()
        for trigger, sql in triggers:
            self.session.execute(text(f'DROP TRIGGER "{trigger}"'))
            self.saved.append(sql)

    def __exit__(self, failed: type[BaseException] | None, *_: object) -> None:
        if failed is not None:
            return  # the transaction is rolled back, triggers and all
        if self.postgresql:
            if self.saved:
                self.session.execute(text(f'ALTER TABLE "{self.table.name}" ENABLE TRIGGER USER'))
            return
        for sql in self.saved:
            self.session.execute(text(sql))
