"""What a load of engagement events depends on, in this order: the caller may load
(authenticated, the permission, the study shows them arms), the file (spooled to a
private temporary file as it arrives, hashed), then a request slot, then the
`Idempotency-Key` claimed with the file's hash.

The file is read before the request takes a slot or its transaction: a slow upload
holds no slot, no connection and (with SQLite) no write lock. The usual idempotency
dependency reads the whole body into memory to fingerprint it; here the fingerprint
is the spooled file's SHA-256, so memory stays flat for a 200 MB file.
"""

from __future__ import annotations

import email.message
import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from app.api.deps import RequestSlot, SessionDep
from app.api.params import SlugPath
from app.auth.deps import CurrentUser, require
from app.auth.permissions import Permission
from app.auth.principal import Principal
from app.db.engine import Database
from app.engagement.rows import FileFormat
from app.errors import FieldProblem, InvalidInput
from app.idempotency import service as idempotency_service
from app.idempotency.deps import (
    MAX_KEY_LENGTH,
    Claim,
    Idempotency,
    IdempotentReplay,
    _claim,
    _release,
)
from app.studies import service as studies

UPLOAD_LIMIT = 200 * 1024 * 1024  # about 1.3 million rows of a platform's export
IN_MEMORY = 1024 * 1024  # a file up to this size is never written to disk
WRITE_EVERY = 1024 * 1024  # bytes gathered before each write (in a worker thread)
MEDIA_TYPES = {
    "text/csv": FileFormat.csv,
    "application/x-ndjson": FileFormat.jsonl,
    "application/jsonl": FileFormat.jsonl,
    "application/json-lines": FileFormat.jsonl,
}

Importer = Annotated[Principal, Depends(require(Permission.import_engagement))]


def check_study(slug: SlugPath, request: Request, actor: Importer) -> Principal:
    """The caller, if the study exists for them and shows them arms (404, 403 before a
    byte of the file is read); in a read transaction of its own, ended at once."""
    db: Database = request.app.state.db
    with db.session(write=False) as session:
        study = studies.get_study(session, slug=slug, user=actor)
        studies.ensure_arms_visible(study, user=actor)
    return actor


Checked = Annotated[Principal, Depends(check_study)]


@dataclass
class Upload:
    """The request's file: where it is, its format, size and SHA-256."""

    file: IO[bytes]
    fmt: FileFormat
    size: int
    sha256: str


def file_format(content_type: str | None) -> FileFormat:
    """The format a Content-Type names (charset, if any, must be UTF-8)."""
    message = email.message.Message()
    message["content-type"] = content_type or ""
    fmt = MEDIA_TYPES.get(message.get_content_type()) if content_type else None
    charset = message.get_param("charset")
    if fmt is None or (isinstance(charset, str) and charset.lower() not in ("utf-8", "utf8")):
        raise InvalidInput(
            [
                FieldProblem(
                    ("content-type",),
                    "send text/csv or application/x-ndjson (JSON lines), in UTF-8",
                )
            ],
            part="header",
        )
    return fmt


async def get_upload(request: Request, _actor: Checked) -> AsyncIterator[Upload]:
    """The body, spooled (in memory up to IN_MEMORY, then a private temporary file,
    deleted when the request ends) and hashed as it arrives; UPLOAD_LIMIT bounds it (413)
    and the server's `body_timeout_s` its time."""
    fmt = file_format(request.headers.get("content-type"))
    digest = hashlib.sha256()
    size = 0
    pending: list[bytes] = []
    held = 0
    with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY, prefix="trialdesk-engagement-") as f:
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            pending.append(chunk)
            held += len(chunk)
            if held >= WRITE_EVERY:
                await run_in_threadpool(f.write, b"".join(pending))
                pending, held = [], 0
        if pending:
            await run_in_threadpool(f.write, b"".join(pending))
        f.seek(0)
        yield Upload(f, fmt, size, digest.hexdigest())


UploadDep = Annotated[Upload, Depends(get_upload, scope="function")]


async def get_import_idempotency(
    request: Request,
    upload: UploadDep,
    _slot: Annotated[None, RequestSlot],
    session: SessionDep,
    caller: CurrentUser,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=MAX_KEY_LENGTH,
            description="the same key with the same file replays the first answer",
        ),
    ] = None,
) -> AsyncIterator[Idempotency]:
    """The `Idempotency-Key` claim of `app.idempotency.deps`, fingerprinted with the
    file's SHA-256 instead of the body itself."""
    if key is None:
        yield Idempotency(session, None, 200)
        return
    ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
    body = f"sha256:{upload.sha256}".encode()
    scope = idempotency_service.user_scope(caller.id)
    claim = Claim(scope, key, request.method, request.url.path, body, ttl)
    outcome = await run_in_threadpool(_claim, session, claim)
    if isinstance(outcome, idempotency_service.StoredResponse):
        raise IdempotentReplay(outcome)
    idempotency = Idempotency(session, outcome, 200)
    try:
        yield idempotency
        if not idempotency.remembered:
            raise RuntimeError(f"{request.url.path}: the endpoint did not call remember()")
    except BaseException:
        await run_in_threadpool(_release, session, outcome)
        raise


ImportIdempotencyDep = Annotated[Idempotency, Depends(get_import_idempotency, scope="function")]
