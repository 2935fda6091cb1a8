"""`trialdesk verify`: every allocation re-derived, the keyed audit chain checked against
its anchors outside the database, the trail replayed against the research data."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.audit.chain import HASHED_FIELDS, canonical_time, dumps, record_mac
from app.audit.models import AuditChainHead, AuditRecord
from app.cli import app as cli
from app.participants.models import Contact, Participant
from app.randomization.models import Allocation
from app.surveys.models import SurveyInstance
from tests import pg

runner = CliRunner()
REASON = "restore drill: the disk of the server failed"


def _env(settings) -> dict[str, str]:
    env = {"TRIALDESK_DATABASE_URL": settings.database_url}
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.key_file is not None:
        env["TRIALDESK_KEY_FILE"] = str(settings.key_file)
    return env


def _verify(settings) -> tuple[int, str]:
    result = runner.invoke(cli, ["verify", "--study", "peer-support"], env=_env(settings))
    return result.exit_code, result.output


def _allow_tampering(db, table: str) -> None:
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            for event in ("update", "delete"):
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{event}")


def _randomize_some(api, n: int = 12) -> list[str]:
    coordinator = api.user("coordinator", "PHL", "PIT")
    codes = []
    for i in range(n):
        code = api.enroll(
            coordinator, site=("PHL", "PIT")[i % 2], diagnosis=("bipolar", "depressive")[i % 2]
        )
        assert api.randomize(coordinator, code).status_code == 200
        codes.append(code)
    return codes


def test_verify_passes_on_untouched_allocations_trail_and_data(settings, api):
    _randomize_some(api)
    code, output = _verify(settings)
    assert code == 0, output
    assert "12 allocations re-derived" in output and "anchored" in output


def test_a_corrected_contact_passes_verify(settings, api):
    """The correction's record names the fields changed, not the values: the contact
    the enrollment's record holds is no longer what `verify` expects of it."""
    [code] = _randomize_some(api, n=1)
    corrected = api.client.put(
        f"/api/v1/studies/peer-support/participants/{code}/contact",
        json={"phone": "215-898-5000"},
        headers={"Authorization": f"Bearer {api.admin_token}"},
    )
    assert corrected.status_code == 200, corrected.text
    status, output = _verify(settings)
    assert status == 0, output


def test_verify_detects_a_tampered_allocation(settings, db, api):
    codes = _randomize_some(api)
    _allow_tampering(db, "allocations")
    with db.engine.begin() as connection:  # arms are sealed: changed by one with the key
        victim = Allocation.participant_code == codes[3]
        arm = connection.execute(sa.select(Allocation.arm).where(victim)).scalar_one()
        other = "control" if arm != "control" else "listserv"
        connection.execute(sa.update(Allocation).where(victim).values(arm=other))
    code, output = _verify(settings)
    assert code == 1
    assert "does not match the re-derived sequence" in output


def test_verify_detects_a_deleted_allocation(settings, db, api):
    codes = _randomize_some(api)
    _allow_tampering(db, "allocations")
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "DELETE FROM allocations WHERE participant_id = "
            f"(SELECT id FROM participants WHERE code = '{codes[0]}')"
        )
    code, output = _verify(settings)
    assert code == 1
    assert "ALLOCATION" in output
    assert f"DATA allocations {codes[0]}: randomized in the trail, no allocation" in output


def test_verify_detects_a_tampered_audit_record(settings, db, api):
    _randomize_some(api, 3)
    _allow_tampering(db, "audit_records")
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE audit_records SET actor = 'nobody@example.org' "
            "WHERE seq = (SELECT MIN(seq) FROM audit_records "
            "WHERE action = 'participant.randomized')"
        )
    code, output = _verify(settings)
    assert code == 1
    assert "content does not match its hash" in output


def test_verify_detects_a_removed_audit_record(settings, db, api):
    _randomize_some(api, 3)
    _allow_tampering(db, "audit_records")
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_records WHERE seq = 5")
    code, output = _verify(settings)
    assert code == 1
    assert "AUDIT record" in output


def test_verify_detects_a_secret_that_no_longer_matches_the_commitment(settings, db, api):
    _randomize_some(api, 3)
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE studies SET commitment = repeat('0', 64)"
            if connection.dialect.name == "postgresql"
            else "UPDATE studies SET commitment = printf('%064d', 0)"
        )
    code, output = _verify(settings)
    assert code == 1
    assert "commitment" in output


# Rewriting the chain as someone holding the database (not the key) would.


def _sha256(fields: dict[str, Any], prev_hash: str, _chain: str) -> str:
    payload = {k: v for k, v in fields.items() if not (k == "request_id" and v is None)}
    payload["at"] = canonical_time(payload["at"])
    payload["prev_hash"] = prev_hash
    return hashlib.sha256(dumps(payload).encode()).hexdigest()


def _wrong_key(fields: dict[str, Any], prev_hash: str, chain: str) -> str:
    return record_mac(fields, prev_hash, key=b"not the server's key".ljust(32), chain_id=chain)


@pytest.mark.parametrize("rehash", [_sha256, _wrong_key], ids=["sha256", "wrong-key"])
def test_an_edited_record_with_the_chain_rehashed_after_it_is_detected(
    settings, db, api, rehash: Callable[[dict[str, Any], str, str], str]
):
    _randomize_some(api, 3)
    with db.session(write=False) as session:
        chain = session.get_one(AuditChainHead, 1).chain_id
        records = [
            {name: getattr(r, name) for name in (*HASHED_FIELDS, "prev_hash", "hash")}
            for r in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        ]
    assert chain is not None
    target = next(r for r in records if r["action"] == "participant.randomized")
    target["actor"] = "intruder@example.org"
    prev = target["prev_hash"]
    _allow_tampering(db, "audit_records")
    with db.engine.begin() as connection:
        for rec in records[target["seq"] - 1 :]:
            fields = {name: rec[name] for name in HASHED_FIELDS}
            digest = rehash(fields, prev, chain)
            connection.execute(
                text(
                    "UPDATE audit_records SET actor = :actor, prev_hash = :prev, hash = :hash "
                    "WHERE seq = :seq"
                ),
                {"actor": rec["actor"], "prev": prev, "hash": digest, "seq": rec["seq"]},
            )
            prev = digest
        connection.execute(text("UPDATE audit_chain_head SET hash = :hash"), {"hash": prev})
    code, output = _verify(settings)
    assert code == 1, output
    assert f"AUDIT record {target['seq']}: content does not match its hash" in output


def test_the_newest_records_deleted_and_the_head_moved_back_is_detected(settings, db, api):
    _randomize_some(api, 4)
    _allow_tampering(db, "audit_records")
    with db.engine.begin() as connection:
        last = connection.execute(text("SELECT MAX(seq) FROM audit_records")).scalar_one()
        connection.execute(text("DELETE FROM audit_records WHERE seq > :s"), {"s": last - 10})
        connection.execute(
            text(
                "UPDATE audit_chain_head SET seq = :s, "
                "hash = (SELECT hash FROM audit_records WHERE seq = :s)"
            ),
            {"s": last - 10},
        )
    code, output = _verify(settings)
    assert code == 1, output
    assert "ANCHOR record" in output and f"and {last - 10}" not in output
    assert f"the trail ends at {last - 10}: its newest records were removed" in output
    assert "AUDIT record" not in output  # the chain itself is whole: only the anchors tell


@pytest.mark.parametrize("head", ["emptied", "removed"])
def test_the_whole_trail_emptied_is_detected(settings, db, api, head):
    # Every record deleted and the head set back to nothing (or removed): the anchors
    # outside the database, or the studies it still holds, tell.
    _randomize_some(api, 2)
    _allow_tampering(db, "audit_records")
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_records"))
        if head == "emptied":
            genesis = "0" * 64
            connection.execute(
                text("UPDATE audit_chain_head SET seq = 0, hash = :h"), {"h": genesis}
            )
        else:
            connection.execute(text("DELETE FROM audit_chain_head"))
    code, output = _verify(settings)
    assert code == 1, output
    assert "ANCHOR record" in output


def _snapshot(settings) -> Callable[[], None]:
    """Copy the whole database now; the function returned puts the copy back."""
    if settings.database_url.startswith("sqlite"):
        path = Path(settings.sqlite_path)
        copy = path.with_name("older-copy.db")
        with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
            source.backup(target)

        def put_back() -> None:
            with sqlite3.connect(copy) as source, sqlite3.connect(path) as target:
                source.backup(target)

        return put_back
    name = settings.database_url.rsplit("/", 1)[1]
    _disconnect(name)
    older = pg.create_database("trialdesk_older", template=name)

    def put_back_pg() -> None:
        _disconnect(name)
        pg.drop_database(name)
        pg.execute(f'ALTER DATABASE "{older}" RENAME TO "{name}"')

    return put_back_pg


def _disconnect(name: str) -> None:
    pg.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )


def test_an_older_copy_of_the_whole_database_put_back_is_detected(settings, db, api):
    _randomize_some(api, 2)
    db.dispose()
    put_back = _snapshot(settings)
    _randomize_some(api, 2)
    db.dispose()
    put_back()
    code, output = _verify(settings)
    assert code == 1, output
    assert "an older copy of the database was put back" in output


def test_a_legitimate_restore_re_anchors_and_verify_passes(settings, db, api, tmp_path):
    _randomize_some(api, 2)
    archive = tmp_path / "backup.tar"
    made = runner.invoke(cli, ["backup", str(archive)], env=_env(settings))
    assert made.exit_code == 0, made.output
    _randomize_some(api, 2)  # anchored beyond the backup's head
    if settings.database_url.startswith("sqlite"):
        (tmp_path / "restored").mkdir()
        target = settings.model_copy(  # the same key: backups never carry it
            update={
                "database_url": f"sqlite:///{tmp_path / 'restored' / 'trialdesk.db'}",
                "key_file": settings.key_file_path,
            }
        )
    else:
        target = settings.model_copy(
            update={"database_url": pg.database_url(pg.create_database("trialdesk_restore"))}
        )
    refused = runner.invoke(cli, ["restore", str(archive), "--reason", "x"], env=_env(target))
    assert refused.exit_code == 1 and "--reason" in refused.output
    restored = runner.invoke(cli, ["restore", str(archive), "--reason", REASON], env=_env(target))
    assert restored.exit_code == 0, restored.output
    code, output = _verify(target)
    assert code == 0, output
    from app.db.engine import Database

    database = Database(target)
    try:
        with database.session(write=False) as session:
            last = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())).first()
    finally:
        database.dispose()
    assert last is not None and last.action == "database.restored" and last.reason == REASON
    backup = last.changes["backup"]["new"]
    assert backup["file"] == "backup.tar" and backup["head_seq"] == last.seq - 1


# The research data changed behind the trail's back (through the ORM: sealed columns
# are written as the application writes them).


def _first_completed(session: Session) -> SurveyInstance:
    return session.scalars(
        select(SurveyInstance)
        .where(SurveyInstance.completed_at.is_not(None))
        .order_by(SurveyInstance.id)
    ).first()  # type: ignore[return-value]


def _answer(session: Session) -> str:
    instance = _first_completed(session)
    item = sorted(instance.answers)[0]
    instance.answers = {**instance.answers, item: 0 if instance.answers[item] != 0 else 1}
    return f"DATA survey_instances {instance.participant_code}:{instance.timepoint}: answers"


def _score(session: Session) -> str:
    instance = _first_completed(session)
    name = sorted(instance.scores or {})[0]
    instance.scores = {**(instance.scores or {}), name: 99}
    return f"DATA survey_instances {instance.participant_code}:{instance.timepoint}: scores"


def _participant(session: Session) -> Participant:
    return session.scalars(select(Participant).order_by(Participant.id)).first()  # type: ignore[return-value]


def _contact(session: Session) -> str:
    person = _participant(session)
    contact = session.get_one(Contact, person.id)
    contact.phone = "555-9999"
    return f"DATA contacts {person.code}: contact differs"


def _stratum(session: Session) -> str:
    person = _participant(session)
    other = "depressive" if (person.strata or {}).get("diagnosis") == "bipolar" else "bipolar"
    person.strata = {"diagnosis": other}
    return f"DATA participants {person.code}: strata differs"


def _status(session: Session) -> str:
    person = _participant(session)
    person.status = "withdrawn"  # type: ignore[assignment]
    return f"DATA participants {person.code}: status differs"


def _allocation(session: Session) -> str:
    person = _participant(session)
    allocation = session.scalars(
        select(Allocation).where(Allocation.participant_id == person.id)
    ).one()
    allocation.position = (allocation.position or 0) + 100
    return f"DATA allocations {person.code}: the slot"


@pytest.mark.parametrize(
    "change",
    [_answer, _score, _contact, _stratum, _status, _allocation],
    ids=["answer", "score", "contact", "stratum", "status", "allocation"],
)
def test_research_data_changed_behind_the_trail_is_reported_with_its_table_and_key(
    settings, db, api, change: Callable[[Session], str]
):
    _randomize_some(api, 3)
    assert _verify(settings)[0] == 0
    _allow_tampering(db, "allocations")
    with db.begin() as session:
        expected = change(session)
    code, output = _verify(settings)
    assert code == 1, output
    assert expected in output, output
