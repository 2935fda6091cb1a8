"""The audit chain's anchors outside the database, `GET .../audit/head`, and `rekey`."""

from __future__ import annotations

import json
import os
import stat

import pytest
from sqlalchemy import select

from app.audit import anchors
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.models import AuditChainHead, AuditRecord
from app.db.server_key import KEYS_INFO
from app.keys import Keys
from tests.helpers import bearer

HEAD = "/api/v1/studies/peer-support/audit/head"


def _chain(db) -> tuple[str, int, str]:
    with db.session(write=False) as session:
        head = session.get_one(AuditChainHead, 1)
    assert head.chain_id is not None
    return head.chain_id, head.seq, head.hash


def _lines(db) -> list[dict]:
    chain_id, _, _ = _chain(db)
    path = anchors.path_of(db.settings.state_folder, chain_id)
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_committed_write_anchors_the_head_in_a_private_file(api, db):
    api.user("statistician")
    chain_id, seq, digest = _chain(db)
    last = _lines(db)[-1]
    assert (last["kind"], last["seq"], last["hash"], last["chain"]) == (
        "head",
        seq,
        digest,
        chain_id,
    )
    path = anchors.path_of(db.settings.state_folder, chain_id)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert isinstance(
        anchors.parse(path.read_bytes().splitlines()[-1], db.keys, chain_id), anchors.Anchor
    )


def test_a_rolled_back_transaction_anchors_nothing(api, db):
    before = _lines(db)
    with pytest.raises(RuntimeError), db.begin() as session:
        audit.record(session, AuditAction.user_created, actor=None, entity_id="x")
        raise RuntimeError("rolled back")
    with db.begin() as session:
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.record(session, AuditAction.user_created, actor=None, entity_id="gone")
            raise RuntimeError("savepoint rolled back")
        audit.record(session, AuditAction.user_created, actor=None, entity_id="kept")
    after = _lines(db)
    assert len(after) == len(before) + 1
    _, seq, digest = _chain(db)
    assert (after[-1]["seq"], after[-1]["hash"]) == (seq, digest)
    with db.session(write=False) as session:
        assert not audit.verify_chain(session) and not audit.verify_anchors(session)


def test_an_altered_anchor_line_is_reported(api, db):
    chain_id, _, _ = _chain(db)
    path = anchors.path_of(db.settings.state_folder, chain_id)
    lines = path.read_text().splitlines()
    first = json.loads(lines[0]) | {"seq": 1}
    path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with db.session(write=False) as session:
        found = audit.verify_anchors(session)
    assert any("line 1: its signature does not match" in b.problem for b in found)


def test_the_head_endpoint_returns_the_signed_anchor_to_admins_only(api, db):
    coordinator = api.user("coordinator", "PHL")
    shown = api.client.get(HEAD, headers=bearer(api.admin_token))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    chain_id, seq, digest = _chain(db)
    assert (body["seq"], body["hash"]) == (seq, digest)
    assert body["at"] and body["anchor"]["seq"] == seq and body["anchor"]["chain"] == chain_id
    assert isinstance(
        anchors.parse(json.dumps(body["anchor"]).encode(), db.keys, chain_id), anchors.Anchor
    )
    assert api.client.get(HEAD, headers=bearer(coordinator)).status_code == 403
    assert api.client.get(HEAD).status_code == 401
    for slug in ("no-such-study", "x" * 60, "\u00e9tude"):
        answer = api.client.get(
            f"/api/v1/studies/{slug}/audit/head", headers=bearer(api.admin_token)
        )
        assert answer.status_code in (404, 422), (slug, answer.text)
    assert (
        api.client.get("/api/v1/studies/no-such-study/audit/head", headers=bearer(api.admin_token))
    ).status_code == 404


def test_the_head_endpoint_anchors_a_head_not_anchored_yet(api, db):
    chain_id, seq, _ = _chain(db)
    anchors.path_of(db.settings.state_folder, chain_id).unlink()
    body = api.client.get(HEAD, headers=bearer(api.admin_token)).json()
    assert body["anchor"]["seq"] == seq
    assert _lines(db)[-1]["seq"] == seq


def test_rekey_re_macs_and_re_seals_every_record_under_the_new_key(api, db):
    api.user("statistician", email="kept@example.org")
    new = Keys(b"another server key, 32 characters or more")
    with db.session(write=False) as session:
        before = [(r.seq, r.reason, r.changes) for r in session.scalars(select(AuditRecord))]
    with db.begin() as session:
        count = audit.rekey(session, old=db.keys, new=new)
    assert count == len(before)
    with db.session(write=False) as session:
        session.info[KEYS_INFO] = new
        assert audit.verify_chain(session) == []
        assert audit.verify_anchors(session) == []
        after = [(r.seq, r.reason, r.changes) for r in session.scalars(select(AuditRecord))]
    assert after == before
    with db.session(write=False) as session:  # the old key no longer verifies
        assert audit.verify_chain(session)
    assert [line["kind"] for line in _lines(db)] == ["rekey"]


def test_rekey_refuses_a_chain_that_does_not_verify(api, db):
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_records DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_records_no_update")
        connection.exec_driver_sql("UPDATE audit_records SET actor = 'x' WHERE seq = 2")
    with pytest.raises(audit.AuditChainBroken), db.begin() as session:
        audit.rekey(session, old=db.keys, new=Keys(b"another server key, 32 characters or more"))
