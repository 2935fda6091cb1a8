"""The payment vendor's file (SPEC 11): every approved entry at the caller's sites, now
issued through the vendor, as a CSV; made again later from the entries themselves.

A file's entries are all issued in one transaction, at its one time (the audit chain
head's): `issued_at` with `issue_method = vendor` is the file's batch id. So a download
lost on the way (a dropped connection, a closed tab) is not lost: the same rows, in the
same order, give the same bytes and the same SHA-256 as the audit record of the first.
Rows carry what never changes after issue (id, code, amount, currency, timepoint, kind):
an entry redeemed since is in its file still.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.incentives.errors import VendorFileNotFound
from app.incentives.models import EntryState, IncentiveEntry, IssueMethod
from app.incentives.schemas import PastVendorFile, VendorFile, VendorFiles
from app.incentives.service import at_sites, issue_step, money
from app.studies.models import Study

VENDOR_FILE_LIMIT = 5000  # entries in one vendor file: the rest go in the next
PAST_FILES_LIMIT = 100  # the latest files listed; older ones by their time
COLUMNS = ("entry_id", "participant", "amount", "currency", "timepoint", "kind")


def vendor_file(session: Session, *, study: Study, actor: Principal) -> VendorFile:
    """The payment vendor's CSV of every approved entry at the caller's sites (the
    oldest `VENDOR_FILE_LIMIT`), each now issued by the vendor method. Participant codes,
    never names: the vendor knows participants by the study's code."""
    now = audit.lock_chain_head(session).at
    query = select(IncentiveEntry).where(
        IncentiveEntry.study_id == study.id,
        IncentiveEntry.state == EntryState.approved.value,
    )
    query = at_sites(query, actor).order_by(IncentiveEntry.id).limit(VENDOR_FILE_LIMIT)
    entries = list(session.scalars(query.with_for_update()))
    values = {"issued_at": now, "issued_by": actor.id, "issue_method": IssueMethod.vendor.value}
    changes = {"state": ("approved", "issued"), "method": (None, IssueMethod.vendor.value)}
    for entry in entries:
        issue_step(session, study, entry, actor, now=now, values=values, changes=changes)
    made = _file(study, entries, now)
    audit.record(
        session,
        AuditAction.incentives_vendor_file,
        actor=actor,
        entity_id=_entity(now),
        study_id=study.id,
        changes={
            "entries": (None, made.entries),
            "total_cents": (None, made.total_cents),
            "sha256": (None, made.sha256),
        },
    )
    return made


def vendor_file_again(
    session: Session,
    *,
    study: Study,
    actor: Principal,
    issued_at: datetime,
    must_exist: bool = True,
) -> VendorFile:
    """The vendor file made at `issued_at`, made again from its entries at the caller's
    sites (404 when none, unless the caller knows a file was made then: a file of no
    entry has none to find); audited with its SHA-256, to compare with the first's."""
    try:
        at = issued_at.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00: past the calendar in UTC
        raise VendorFileNotFound("no vendor file was made then") from None
    audit.lock_chain_head(session)
    query = select(IncentiveEntry).where(
        IncentiveEntry.study_id == study.id,
        IncentiveEntry.issue_method == IssueMethod.vendor.value,
        IncentiveEntry.issued_at == at,
    )
    entries = list(session.scalars(at_sites(query, actor).order_by(IncentiveEntry.id)))
    if not entries and must_exist:
        raise VendorFileNotFound(f"no vendor file of {at.isoformat()} at your sites")
    made = _file(study, entries, at)
    audit.record(
        session,
        AuditAction.incentives_vendor_file_again,
        actor=actor,
        entity_id=_entity(at),
        study_id=study.id,
        changes={"entries": (None, made.entries), "sha256": (None, made.sha256)},
    )
    return made


def past_files(session: Session, *, study: Study, user: Principal) -> VendorFiles:
    """The latest `PAST_FILES_LIMIT` vendor files with entries at the user's sites,
    newest first: when, how many entries, how much by currency."""
    query = select(
        IncentiveEntry.issued_at,
        IncentiveEntry.currency,
        func.count(),
        func.sum(IncentiveEntry.amount_cents),
    ).where(
        IncentiveEntry.study_id == study.id,
        IncentiveEntry.issue_method == IssueMethod.vendor.value,
    )
    times = at_sites(
        select(IncentiveEntry.issued_at)
        .where(
            IncentiveEntry.study_id == study.id,
            IncentiveEntry.issue_method == IssueMethod.vendor.value,
        )
        .distinct(),
        user,
    )
    latest = (
        times.order_by(IncentiveEntry.issued_at.desc()).limit(PAST_FILES_LIMIT).scalar_subquery()
    )
    query = at_sites(query.where(IncentiveEntry.issued_at.in_(latest)), user)
    rows = session.execute(
        query.group_by(IncentiveEntry.issued_at, IncentiveEntry.currency).order_by(
            IncentiveEntry.issued_at.desc(), IncentiveEntry.currency
        )
    ).all()
    files: dict[datetime, PastVendorFile] = {}
    for issued_at, currency, count, cents in rows:
        past = files.setdefault(
            issued_at, PastVendorFile(issued_at=issued_at, entries=0, total_cents={})
        )
        past.entries += count
        past.total_cents[currency] = int(cents)
    return VendorFiles(files=list(files.values()))


def _file(study: Study, entries: Sequence[IncentiveEntry], at: datetime) -> VendorFile:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    totals: dict[str, int] = {}
    for entry in entries:
        row = (entry.id, entry.participant_code, money(entry.amount_cents), entry.currency)
        writer.writerow((*row, entry.timepoint, entry.kind))
        totals[entry.currency] = totals.get(entry.currency, 0) + entry.amount_cents
    text = out.getvalue()
    return VendorFile(
        entries=len(entries),
        total_cents=totals,
        issued_at=at,
        filename=f"{study.slug}-vendor-{at:%Y%m%d-%H%M%S}.csv",
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        csv=text,
    )


def _entity(at: datetime) -> str:
    """The file's entity in the trail: its full time, which no other file shares."""
    return f"vendor-file:{at.isoformat()}"
