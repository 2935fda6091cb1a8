"""The audit trail, for those who may read it: by study, action, actor or entity, a page
at a time, and "Verify the chain", which re-hashes the whole trail."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request, Response
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import Permission
from app.console.deps import Staff, console_router, needs, view
from app.errors import FieldProblem, InvalidInput
from app.studies import service as studies

AUDIT_PAGE = 100

router = console_router()

Auditor = Annotated[Staff, needs(Permission.read_audit)]

_ACTIONS = frozenset(a.value for a in AuditAction)


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _changes(changes: Mapping[str, Any]) -> Iterator[str]:
    for field, change in changes.items():
        if isinstance(change, Mapping) and set(change) <= {"old", "new"}:
            yield f"{field}: {_value(change.get('old'))} → {_value(change.get('new'))}"
        else:
            yield f"{field}: {_value(change)}"


def _last_seq(session: Session) -> int:
    """The last record's seq, found with the trail's listing alone (the trail has no
    count): a record at or after `seq` exists for every seq up to the last, and none
    beyond; so double, then halve (two dozen indexed look-ups for millions)."""

    def exists(seq: int) -> bool:
        return bool(audit.list_records(session, study_id=None, after_seq=seq - 1, limit=1))

    if not exists(1):
        return 0
    low, high = 1, 2
    while exists(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if exists(middle) else (low, middle)
    return low


@router.get("/admin/audit")
def audit_page(
    request: Request,
    session: ReadSessionDep,
    staff: Auditor,
    study: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=320)] = "",
    entity: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    verify: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    """The audit trail, oldest first, 100 records a page; by study, action, actor or
    entity. "Verify the chain" re-hashes the whole trail."""
    if action and action not in _ACTIONS:
        raise InvalidInput([FieldProblem(("action",), "not an audit action")], part="query")
    filters = {
        "study": study.strip(),
        "action": action,
        "actor": actor.strip().lower(),
        "entity": entity.strip(),
    }
    study_id, hidden = studies.trail_scope(session, staff.user, filters["study"] or None)
    rows = audit.list_records(
        session,
        study_id=study_id,
        hidden_studies=hidden,
        after_seq=after,
        limit=AUDIT_PAGE,
        entity=filters["entity"] or None,
        action=filters["action"] or None,
        actor=filters["actor"] or None,
    )
    shown = {name: value for name, value in filters.items() if value}
    next_query = None
    if len(rows) == AUDIT_PAGE:
        next_query = urlencode({**shown, "after": rows[-1].seq})
    checked: dict[str, Any] | None = None
    if verify == "1":
        breaks = audit.verify_chain(session)
        checked = {"breaks": breaks, "count": 0 if breaks else _last_seq(session)}
    context = {
        "rows": [
            {
                "seq": r.seq,
                "at": r.at.strftime("%Y-%m-%d %H:%M:%S"),
                "actor": r.actor,
                "action": r.action,
                "entity": f"{r.entity_type} {r.entity_id}",
                "reason": r.reason or "",
                "changes": list(_changes(r.changes)),
            }
            for r in rows
        ],
        "filters": filters,
        "studies": studies.list_studies(session, user=staff.user, after_id=0, limit=1000),
        "actions": [a.value for a in AuditAction],
        "next_query": next_query,
        "first_query": urlencode(shown) if after else None,
        "checked": checked,
        "filtered": bool(shown),
    }
    return view(request, "console/admin_audit.html", context)
