"""Audit API schemas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.audit.models import AuditRecord


class AuditRead(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    reason: str | None
    changes: dict[str, Any]
    request_id: str | None
    prev_hash: str
    hash: str


class AuditList(BaseModel):
    items: list[AuditRead]
    next: str | None


class AnchorRead(BaseModel):
    """A signed checkpoint of the head, as written outside the database: keep it; the
    server can later tell whether its trail still holds this seq with this hash."""

    v: int
    kind: str
    chain: str
    seq: int
    hash: str
    at: str
    base_seq: int | None = None
    sig: str


class AuditHead(BaseModel):
    seq: int
    hash: str
    at: datetime | None
    anchor: AnchorRead | None


def audit_page(rows: Sequence[AuditRecord], next_url: str | None) -> AuditList:
    """A page of records as the API lists them."""
    return AuditList(
        items=[AuditRead.model_validate(r, from_attributes=True) for r in rows], next=next_url
    )
