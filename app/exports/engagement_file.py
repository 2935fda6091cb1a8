"""The unblinded engagement file: one row per randomized participant with their arm and
their use of the intervention (SPEC 11). Engagement tells the arm, so it is part of the
unblinded export only; a file of one row per participant, made in memory (10,000
participants: about 1 MB) and audited as started and completed in the request's
transaction."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.engagement import service as engagement
from app.engagement.usage import LAST_MONTH, Summary
from app.exports import formats
from app.exports.model import Column
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import group_codes, pseudonym

KINDS = ("post", "reply", "login", "email_read")  # a column each; the rest in events_other


def _column(name: str, label: str, type_: str = "integer") -> Column:
    return Column(name, label, type_, get=lambda *_: None)


COLUMNS = [
    _column("pseudonym", "Participant (pseudonym)", "string"),
    _column("group", "Coded group", "string"),
    _column("arm", "Arm", "string"),
    _column("arm_label", "Arm label", "string"),
    _column("active_weeks", "Weeks of follow-up with any use (week 0: days 0-6)"),
    _column("posts", "Posts and replies"),
    _column("logins", "Logins"),
    _column("events", "Every event counted"),
    _column("first_use_day", "Day of first use (0: day of randomization)"),
    _column("last_use_day", "Day of last use (0: day of randomization)"),
    _column("used_last_30_days", "Any use in the 30 days before the export", "boolean"),
    *(_column(f"events_{kind}", f"Events of kind {kind}") for kind in KINDS),
    _column("events_other", "Events of any other kind"),
]


def rows(
    summaries: Sequence[Summary], *, key: bytes, labels: dict[str, str], now: datetime
) -> Iterator[list[Any]]:
    """The file's rows, in the export order of the participants."""
    groups = group_codes(key, list(labels))
    since = now - LAST_MONTH
    for s in summaries:
        known = [s.by_kind.get(kind, 0) for kind in KINDS]
        yield [
            pseudonym(key, s.code),
            groups[s.arm],
            s.arm,
            labels[s.arm],
            s.active_weeks,
            s.posts,
            s.logins,
            s.events,
            s.day_of(s.first_use),
            s.day_of(s.last_use),
            s.used_since(since),
            *known,
            s.events - sum(known),
        ]


def engagement_file(
    session: Session, *, study: Study, user: Principal, fmt: str, reason: str, now: datetime
) -> bytes:
    """The file's bytes (CSV or JSON), for a role the study shows arms to; audited
    `export.started` (with the reason) and `export.completed` (rows, SHA-256)."""
    studies.ensure_arms_visible(study, user=user)
    definition = studies.definition_of(study)
    key = studies.blinding_key_of(session, study)
    export_id = secrets.token_hex(8)
    entity = f"{study.slug}:unblinded-engagement"
    audit.record(
        session,
        AuditAction.export_started,
        actor=user,
        entity_id=entity,
        study_id=study.id,
        reason=reason,
        changes={"export": (None, export_id), "parameters": (None, {"format": fmt})},
    )
    found = engagement.summaries(session, study=study)
    labels = {arm.code: arm.label for arm in definition.arms}
    made = list(rows(found, key=key, labels=labels, now=now))
    write = formats.csv_chunks if fmt == "csv" else formats.json_chunks
    content = "".join(write(COLUMNS, made)).encode()
    audit.record(
        session,
        AuditAction.export_completed,
        actor=user,
        entity_id=entity,
        study_id=study.id,
        changes={
            "export": (None, export_id),
            "rows": (None, len(made)),
            "bytes": (None, len(content)),
            "sha256": (None, hashlib.sha256(content).hexdigest()),
        },
    )
    return content
