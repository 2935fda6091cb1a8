"""Export streams: bounded per process, and audited however they end."""

from __future__ import annotations

import gc

from sqlalchemy import select

from app.db.engine import Database
from app.exports import service
from app.exports.dataset import Shape
from app.exports.formats import CHUNK_CHARS
from app.studies.models import Study
from tests.helpers import STUDY, bearer

BLINDED = f"/api/v1/studies/{STUDY}/exports/blinded"


def _actions(api) -> list[dict]:
    audit = api.client.get(
        f"/api/v1/studies/{STUDY}/audit", params={"limit": 1000}, headers=bearer(api.admin_token)
    )
    return [r for r in audit.json()["items"] if r["action"].startswith("export.")]


def test_a_fifth_download_at_once_is_told_to_come_back_and_a_slot_frees_when_done(api):
    held = [service.StreamSlot() for _ in range(service.MAX_STREAMS)]
    try:
        busy = api.client.get(BLINDED, headers=bearer(api.admin_token))
        assert busy.status_code == 503 and "Retry-After" in busy.headers
        assert _actions(api) == []  # refused before anything was audited
    finally:
        for slot in held:
            slot.release()
    for _ in range(service.MAX_STREAMS + 2):  # each download gives its slot back
        assert api.client.get(BLINDED, headers=bearer(api.admin_token)).status_code == 200
    unsent = service.StreamSlot()
    del unsent  # a response never sent gives its slot back too
    gc.collect()
    assert len([service.StreamSlot() for _ in range(service.MAX_STREAMS)]) == service.MAX_STREAMS


def test_a_download_cut_short_is_audited_as_aborted_with_what_was_sent(api, db):
    for n in range(70):  # three rows each: more than one chunk
        api.enroll(api.admin_token, site=("PHL", "PIT")[n % 2])
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        export = service.prepare(session, study=study, kind=service.Kind.blinded, shape=Shape.long)
        service.started(session, export, parameters={"format": "json"}, actor=None)
    chunks = service.stream(db, export, fmt=service.Format.json, actor=None)
    first = next(chunks)
    assert len(first) >= CHUNK_CHARS  # more was to come
    chunks.close()  # what the server does when its client goes away
    records = _actions(api)
    assert [r["action"] for r in records] == ["export.started", "export.aborted"]
    aborted = records[1]["changes"]
    assert aborted["export"]["new"] == records[0]["changes"]["export"]["new"] == export.id
    assert aborted["bytes"]["new"] == len(first) and 0 < aborted["rows"]["new"] < 210


def test_a_download_past_its_time_limit_is_cut_short_and_audited(api, settings):
    impatient = Database(settings.model_copy(update={"export_time_limit_s": 0}))
    try:
        with impatient.begin() as session:
            study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
            export = service.prepare(
                session, study=study, kind=service.Kind.blinded, shape=Shape.long
            )
        assert list(service.stream(impatient, export, fmt=service.Format.csv, actor=None)) == []
    finally:
        impatient.dispose()
    [aborted] = _actions(api)
    assert aborted["action"] == "export.aborted" and aborted["changes"]["bytes"]["new"] == 0
