"""Nothing readable at rest without the key: the whole flow of a participant runs, then
the raw database (every cell of every table through a plain driver connection, and the
SQLite file with its WAL byte for byte) is searched for what was said about them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, load_only

from app.auth.service import authenticate
from app.config import ConfigurationError, Settings
from app.db.base import utcnow
from app.db.engine import Database
from app.db.schema import alembic_config
from app.db.sealed import KeysMissing, SealedText, attach_keys, keyed_hash, reseal, unpadded
from app.demo import demo_definition
from app.keys import Keys, Use, WrongKey
from app.main import create_app
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.participants import service as participants
from app.participants.models import Contact, Participant
from app.randomization.models import Allocation
from app.scheduler import planner
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import pseudonym
from tests.helpers import BASELINE_ANSWERS, Api, bearer, english_only, enrollment

STUDY = "sealed-study"
BASE = f"/api/v1/studies/{STUDY}"
NAME = "Zebulon Quartermaine"
EMAIL = "Zeb.Hidden@sealed.example"  # as validated: the domain in lower case
PHONE = "+12155559977"  # E.164, as enrollment keeps it (SPEC 11)
FREE_TEXT = "I-TOLD-NOBODY-ABOUT-THE-VOICES-\u00e9\u4e2d"
ALERT_NOTE = "CALLED-HIM-AT-HOME-NOTE"
WITHDRAWAL_REASON = "MOVED-TO-ANOTHER-CITY-REASON"
UNBLIND_REASON = "SERIOUS-ADVERSE-EVENT-UNBLIND-REASON"
CORRECTED_TEXT = "HEARS-THEM-ONLY-AT-NIGHT-CORRECTED"
CORRECTION_REASON = "MISHEARD-ON-THE-PHONE-CORRECTION-REASON"
AE_TERM = "OVERDOSE-OF-LITHIUM-EVENT-TERM"
AE_NOTE = "ADMITTED-TO-WARD-SEVEN-NOTE"
AE_REFERENCE = "IRB-REFERENCE-SEALED-42"
DEVIATION_TEXT = "CONSENT-SIGNED-AFTER-BASELINE-DESCRIPTION"
DEVIATION_ACTION = "RETRAINED-THE-RA-CORRECTIVE-ACTION"
TIMEPOINT = "month_12"  # a call about a survey: the timepoint is sealed
ARM_LABELS = {
    "listserv": "Armlabel-Alpha-Listserv",
    "bulletin_board": "Armlabel-Beta-Board",
    "control": "Armlabel-Gamma-Control",
}
# Tables whose cells the search leaves out: none (the audit trail's reason and changes,
# which hold answers, notes and arms, are sealed like the research tables).
SEALED_ELSEWHERE: set[str] = set()


def _definition() -> dict[str, Any]:
    """The demo study with arm labels easy to search for and free text at baseline."""
    document = english_only(demo_definition())
    document["slug"] = STUDY
    document["code_prefix"] = "SX"
    for arm in document["arms"]:
        arm["label"] = ARM_LABELS[arm["code"]]
    document["instruments"].append(
        {
            "code": "background",
            "title": "About you",
            "items": [{"code": "story", "text": "Anything else?", "type": "text"}],
        }
    )
    for timepoint in document["schedule"]:
        if timepoint["code"] == "baseline":
            timepoint["instruments"].append("background")
    document["blinding"]["arm_visible_to"] = ["admin", "unblinded_statistician"]
    return document


def _flow(api: Api, db: Database) -> dict[str, Any]:
    """Enroll (name, email, phone), baseline with free text and PHQ-9 item 9 at 2 (an
    alert), randomize, acknowledge the alert with a note, queue the emails, withdraw and
    unblind with reasons; a second participant is randomized too."""
    admin = api.admin_token
    client = api.client
    assert client.post("/api/v1/studies", json=_definition(), headers=bearer(admin)).is_success
    assert client.post(f"{BASE}/sites", json={"code": "PHL", "name": "P"}, headers=bearer(admin))
    assert client.post(f"{BASE}/activate", headers=bearer(admin)).status_code == 200
    body = enrollment() | {"contact": {"name": NAME, "email": EMAIL, "phone": PHONE}}
    enrolled = client.post(f"{BASE}/participants", json=body, headers=bearer(admin))
    assert enrolled.status_code == 201, enrolled.text
    code = enrolled.json()["code"]
    with db.begin() as session:  # the scheduler's part: the invitation owed is queued...
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        rows = planner.owed_surveys(session, study=study, now=utcnow(), limit=100)
        assert planner.enqueue(session, study=study, now=utcnow(), rows=rows) == 1
        message = session.scalars(sa.select(OutboxMessage)).one()
        # ...and the mail server refuses it, naming the address in its answer.
        outbox.mark_failed(session, message=message, error=f"550 <{EMAIL}>: no", now=utcnow())
    answers = BASELINE_ANSWERS | {"phq9_9": 2, "story": FREE_TEXT}
    api.complete_survey(code, study=STUDY, answers=answers)
    corrected = client.post(
        f"{BASE}/participants/{code}/surveys/baseline/corrections",
        json={"item": "story", "value": CORRECTED_TEXT, "reason": CORRECTION_REASON},
        headers=bearer(admin),
    )
    assert corrected.status_code == 201, corrected.text
    other = client.post(f"{BASE}/participants", json=enrollment(), headers=bearer(admin))
    other_code = other.json()["code"]
    arms = {}
    for someone in (code, other_code):
        randomized = api.randomize(admin, someone, study=STUDY)
        assert randomized.status_code == 200, randomized.text
        arms[someone] = randomized.json()["arm"]
    alerts = client.get(f"{BASE}/alerts", headers=bearer(admin)).json()["items"]
    assert [a["participant"] for a in alerts] == [code], alerts
    acknowledged = client.post(
        f"{BASE}/alerts/{alerts[0]['id']}/acknowledge",
        json={"outcome": "no_event", "note": ALERT_NOTE},
        headers=bearer(admin),
    )
    assert acknowledged.status_code == 200, acknowledged.text
    withdrawn = client.post(
        f"{BASE}/participants/{code}/withdraw",
        json={"reason": WITHDRAWAL_REASON},
        headers=bearer(admin),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    unblinded = client.post(
        f"{BASE}/participants/{other_code}/unblind",
        json={"reason": UNBLIND_REASON},
        headers=bearer(admin),
    )
    assert unblinded.status_code == 200, unblinded.text
    # Safety records (SPEC 9): an event's term, notes and a deadline's reference, a
    # deviation's description and corrective action.
    event = client.post(
        f"{BASE}/participants/{other_code}/events",
        json={
            "AETERM": AE_TERM,
            "AESTDTC": "2026-01",
            "AESEV": "severe",
            "AESER": True,
            "AESHOSP": True,
            "AEREL": "possible",
            "AEEXPECT": False,
            "AEOUT": "recovering",
            "AEACN": "none",
            "note": AE_NOTE,
        },
        headers=bearer(admin),
    )
    assert event.status_code == 201, event.text
    reported = client.post(
        f"{BASE}/events/{event.json()['id']}/deadlines/irb_sae/report",
        json={"reported_on": event.json()["state"]["aware_on"], "reference": AE_REFERENCE},
        headers=bearer(admin),
    )
    assert reported.status_code == 200, reported.text
    deviation = client.post(
        f"{BASE}/participants/{other_code}/deviations",
        json={
            "category": "consent_error",
            "occurred_on": event.json()["state"]["aware_on"],
            "description": DEVIATION_TEXT,
            "important": True,
            "corrective_action": DEVIATION_ACTION,
        },
        headers=bearer(admin),
    )
    assert deviation.status_code == 201, deviation.text
    return {"code": code, "other": other_code, "arms": arms}


def _cells(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """Every text, bytes or JSON cell of every table, as text, through the plain driver:
    table → [(column, value)]."""
    found: dict[str, list[tuple[str, str]]] = {}
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        with sqlite3.connect(url.database) as connection:
            tables = [
                r[0]
                for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                cursor = connection.execute(f'SELECT * FROM "{table}"')
                names = [d[0] for d in cursor.description]
                found[table] = [
                    (name, _as_text(value))
                    for row in cursor
                    for name, value in zip(names, row, strict=True)
                    if isinstance(value, str | bytes)
                ]
        return found
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        tables = [
            r[0]
            for r in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            names = [d.name for d in cursor.description or ()]
            found[table] = [
                (name, _as_text(value))
                for row in cursor
                for name, value in zip(names, row, strict=True)
                if isinstance(value, str | bytes | memoryview | dict | list)
            ]
    return found


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else repr(value)


def _secrets() -> list[str]:
    """What must not be readable at rest (in any case, in JSON as well)."""
    return [
        NAME,
        "Quartermaine",
        EMAIL,
        "hidden@sealed",
        PHONE,
        "013-9977",
        "0139977",
        "I-TOLD-NOBODY",
        "VOICES",
        ALERT_NOTE,
        WITHDRAWAL_REASON,
        UNBLIND_REASON,
        CORRECTED_TEXT,
        CORRECTION_REASON,
        AE_TERM,
        AE_NOTE,
        AE_REFERENCE,
        DEVIATION_TEXT,
        DEVIATION_ACTION,
        '"AETERM"',  # a version's fields are one sealed document, names and all
        '"phq9_9"',
        '"story"',  # the item a correction was about
        "phq9_self_harm",
        "Thoughts of self-harm",
        "group_experience",  # the arm-limited instrument: chosen for some arms' surveys
        *ARM_LABELS.values(),
    ]


def _contact_and_engagement(api: Api, db: Database, code: str) -> int:
    """A call about the participant's month 12 survey, and one engagement event of
    theirs (events tell the arm: only one arm has a bulletin board); their id."""
    admin = bearer(api.admin_token)
    called = api.client.post(
        f"{BASE}/participants/{code}/contacts",
        json={"method": "phone", "outcome": "reached", "timepoint": TIMEPOINT},
        headers=admin,
    )
    assert called.status_code == 201 and called.json()["timepoint"] == TIMEPOINT, called.text
    event = f'{{"event_id": "e1", "participant": "{code}", "at": "{utcnow().isoformat()}", '
    loaded = api.client.post(
        f"{BASE}/engagement",
        content=event + '"kind": "post"}\n',
        headers={**admin, "content-type": "application/x-ndjson"},
    )
    assert loaded.status_code == 200 and loaded.json()["accepted"] == 1, loaded.text
    with db.session(write=False) as session:
        return session.scalars(sa.select(Participant.id).where(Participant.code == code)).one()


def _ids_in(settings: Settings, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A table's column names and rows, through the plain driver."""
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        with sqlite3.connect(url.database) as connection:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            return [d[0] for d in cursor.description], cursor.fetchall()
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        cursor = connection.execute(f'SELECT * FROM "{table}"')
        return [d.name for d in cursor.description or ()], cursor.fetchall()


def test_a_copy_of_the_database_holds_no_contact_answer_note_reason_or_arm(settings, api, db):
    flow = _flow(api, db)
    pid = _contact_and_engagement(api, db, flow["other"])
    cells = _cells(settings)
    # Whose engagement events are (and so who used the intervention) is not in a copy:
    # no participant's id or code, only a keyed hash.
    columns, events = _ids_in(settings, "engagement_events")
    assert len(events) == 1 and "participant_id" not in columns
    assert not [c for c in columns if c.startswith("participant") and c != "participant_key"]
    about = [
        v for c, v in zip(columns, events[0], strict=True) if c not in ("id", "study_id", "count")
    ]
    assert not [v for v in about if v in (pid, str(pid), flow["other"])]
    assert "month" not in " ".join(v for _, v in cells["contact_attempts"]).lower()
    assert cells["contacts"] and cells["survey_instances"] and cells["allocations"]
    assert cells["answer_corrections"]
    needles = [n.lower() for n in _secrets()]
    arm_codes = set(ARM_LABELS)
    leaks = []
    for table, values in cells.items():
        if table in SEALED_ELSEWHERE:
            continue
        for column, value in values:
            text = value.lower()
            leaks += [(table, column, n) for n in needles if n in text and table != "studies"]
            if table != "studies":  # the definition lists the arms, not who is in them
                leaks += [(table, column, a) for a in arm_codes if a in text]
    assert leaks == []
    # The study definition is where arm labels and the alert's text belong; no participant
    # data is there.
    study_text = " ".join(v for _, v in cells["studies"]).lower()
    for needle in (NAME, EMAIL, PHONE, FREE_TEXT, ALERT_NOTE, WITHDRAWAL_REASON):
        assert needle.lower() not in study_text
    # No pseudonym beside a participant code: none is stored anywhere.
    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        key = studies.blinding_key_of(session, study)
    names = [pseudonym(key, flow["code"]), pseudonym(key, flow["other"])]
    stored = [
        (t, c) for t, values in cells.items() for c, v in values if any(n in v for n in names)
    ]
    assert stored == []
    if settings.database_url.startswith("sqlite"):
        personal = (NAME, EMAIL, PHONE, "Quartermaine", FREE_TEXT, ALERT_NOTE)
        reasons = [WITHDRAWAL_REASON, UNBLIND_REASON, CORRECTED_TEXT, CORRECTION_REASON]
        _the_files_hold_none_of_it(settings, [*personal, *reasons])


def _the_files_hold_none_of_it(settings: Settings, needles: list[str]) -> None:
    path = Path(sa.make_url(settings.database_url).database or "")
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    assert any(p.name.endswith("-wal") for p in files)
    for file in files:
        content = file.read_bytes().lower()
        for needle in needles:
            for encoded in (needle.lower().encode(), needle.lower().encode("utf-16-le")):
                assert encoded not in content, (file.name, needle)


def test_everything_reads_back_after_a_restart_and_a_wrong_key_is_refused(
    settings, api, db, tmp_path
):
    flow = _flow(api, db)
    db.dispose()
    restarted = Settings(
        database_url=settings.database_url,
        secret_key=settings.secret_key,
        base_url="http://testserver",
        scheduler=False,
    )
    with TestClient(create_app(restarted)) as client:
        again = Api(client, admin_token=api.admin_token)
        shown = again.client.get(
            f"{BASE}/participants/{flow['code']}", headers=bearer(api.admin_token)
        ).json()
        assert shown["contact"] == {"name": NAME, "email": EMAIL, "phone": PHONE}
        assert shown["withdrawal_reason"] == WITHDRAWAL_REASON
        assert shown["arm"] == flow["arms"][flow["code"]]
        alerts = client.get(
            f"{BASE}/alerts", params={"open": "false"}, headers=bearer(api.admin_token)
        ).json()["items"]
        assert alerts[0]["note"] == ALERT_NOTE and alerts[0]["rule"] == "phq9_self_harm"
        unblinded = client.get(
            f"{BASE}/exports/unblinded",
            params={"reason": "The data-monitoring committee meets"},
            headers=bearer(api.admin_token),
        )
        assert unblinded.status_code == 200, unblinded.text
        assert FREE_TEXT not in unblinded.text  # free text is never exported
        assert ARM_LABELS[flow["arms"][flow["code"]]] in unblinded.text
        consort = client.get(f"{BASE}/reports/consort", headers=bearer(api.admin_token)).json()
        assert sum(g["randomized"] for g in consort["groups"]) == 2
    other = Settings(
        database_url=settings.database_url,
        secret_key="another-key-of-at-least-32-characters!",
        scheduler=False,
    )
    with pytest.raises(ConfigurationError, match="not the one"), TestClient(create_app(other)):
        pass
    stranger = Database(other)  # a process that skipped the check still opens nothing
    try:
        with stranger.session(write=False) as session, pytest.raises(WrongKey):
            session.scalars(sa.select(Contact)).all()
    finally:
        stranger.dispose()


def test_contacts_are_found_by_exact_email_or_phone_through_their_keyed_hashes(settings, api, db):
    flow = _flow(api, db)
    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        admin = _principal(session, api)
        found = participants.find_by_contact(
            session, study=study, user=admin, email="  zeb.hidden@sealed.example "
        )
        assert [p.code for p in found] == [flow["code"]]
        typed = "+1 (215) 555-9977"  # as a coordinator types it: found by its digits
        found = participants.find_by_contact(session, study=study, user=admin, phone=typed)
        assert [p.code for p in found] == [flow["code"]]
        assert participants.find_by_contact(session, study=study, user=admin, email="x@y.z") == []
        assert participants.find_by_contact(session, study=study, user=admin) == []
        stored = session.execute(sa.select(Contact.email_index)).scalars().all()
        assert keyed_hash(db.keys, "email", EMAIL) in stored


def _principal(session: Session, api: Api) -> Any:
    return authenticate(session, token=api.admin_token, now=utcnow())


def test_reseal_seals_everything_again_and_rebuilds_the_keyed_hashes(settings, api, db):
    flow = _flow(api, db)
    cells_before = _cells(settings)
    with db.begin() as session:
        # A keyed hash gone stale (as after a rotation), to be rebuilt.
        session.execute(sa.update(Contact).values(email_index="stale"))
        count = reseal(session)
    assert count >= 10
    cells_after = _cells(settings)
    for table in ("contacts", "allocations", "survey_instances", "survey_alerts"):
        sealed_before = {v for _, v in cells_before[table]}
        sealed_after = {v for _, v in cells_after[table]}
        assert len(sealed_before & sealed_after) < len(sealed_after), table  # written anew
    with db.session(write=False) as session:
        contact = session.scalars(sa.select(Contact)).first()
        assert contact is not None and contact.name == NAME
        assert contact.email_index == keyed_hash(db.keys, "email", EMAIL)
        arms = dict(session.execute(sa.select(Allocation.participant_code, Allocation.arm)).all())
    assert arms == flow["arms"]
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM allocations")  # the ledger's guard is back


def test_databases_with_different_keys_live_side_by_side_in_one_process(tmp_path):
    engines = []
    for n in range(2):
        engine = sa.create_engine(f"sqlite:///{tmp_path / f'{n}.db'}")
        attach_keys(engine, Keys(bytes([n + 1]) * 32))
        engines.append(engine)
    table = sa.Table("t", sa.MetaData(), sa.Column("v", SealedText("t.v")))
    for n, engine in enumerate(engines):
        with engine.begin() as connection:
            table.create(connection)
            connection.execute(table.insert().values(v=f"value {n}"))
    for n, engine in enumerate(engines):
        with engine.connect() as connection:
            assert connection.scalar(sa.select(table.c.v)) == f"value {n}"
            raw = connection.exec_driver_sql("SELECT v FROM t").scalar_one()
            opened = Keys(bytes([n + 1]) * 32).open(Use.research, raw, context="t.v")
            assert unpadded(opened) == f"value {n}".encode()
    other = sa.Table("t", sa.MetaData(), sa.Column("v", SealedText("t.v")), schema="other")
    with engines[1].connect() as connection:  # the other's value does not open here
        connection.exec_driver_sql("ATTACH DATABASE ? AS other", (str(tmp_path / "0.db"),))
        with pytest.raises(WrongKey):
            connection.execute(sa.select(other.c.v)).all()
    plain = sa.create_engine(f"sqlite:///{tmp_path / '0.db'}")  # no keys: a clear error
    with plain.connect() as connection, pytest.raises(KeysMissing, match="without the server"):
        connection.execute(sa.select(table.c.v)).all()
    for engine in (*engines, plain):
        engine.dispose()


def _readable(api: Api, code: str) -> dict[str, Any]:
    """What the admin reads of a participant: detail, alerts, the unblinded export."""
    admin = bearer(api.admin_token)
    detail = api.client.get(f"{BASE}/participants/{code}", headers=admin).json()
    for survey in detail.get("surveys", []):
        survey.pop("link", None)
    alerts = api.client.get(f"{BASE}/alerts", params={"open": "false"}, headers=admin).json()
    export = api.client.get(
        f"{BASE}/exports/unblinded",
        params={"reason": "The data-monitoring committee meets", "format": "json"},
        headers=admin,
    )
    assert export.status_code == 200, export.text
    return {"detail": detail, "alerts": alerts["items"], "export": export.json()}


def test_the_migration_seals_the_rows_that_exist_and_downgrading_opens_them(settings, api, db):
    flow = _flow(api, db)
    before = _readable(api, flow["code"])
    db.dispose()
    config = alembic_config(settings.database_url, server_key=settings.server_key)
    command.downgrade(config, "fc929eb8918c")  # the schema before sealing: all in plain
    plain = _cells(settings)
    assert (("name", NAME)) in plain["contacts"]
    # The answer as corrected (the corrections' table, made later, is gone with its rows).
    assert any(CORRECTED_TEXT in v for c, v in plain["survey_instances"] if c == "answers")
    assert any(v == ALERT_NOTE for _, v in plain["survey_alerts"])
    arm = flow["arms"][flow["code"]]
    assert ("arm", arm) in plain["allocations"]
    with db.session(write=False) as session:
        # Only the columns that schema had (later revisions added others to studies).
        older = sa.select(Study).options(load_only(Study.id, Study.slug))
        study = session.scalars(older.where(Study.slug == STUDY)).one()
        key = studies.blinding_key_of(session, study)
    assert ("pseudonym", pseudonym(key, flow["code"])) in plain["participants"]
    command.upgrade(config, "head")
    sealed = _cells(settings)
    for table, values in sealed.items():
        if table in SEALED_ELSEWHERE | {"studies"}:
            continue
        for column, value in values:
            for needle in (NAME, EMAIL, "I-TOLD-NOBODY", ALERT_NOTE, WITHDRAWAL_REASON):
                assert needle.lower() not in value.lower(), (table, column)
            assert value not in ARM_LABELS, (table, column)
    with db.session(write=False) as session:
        contact = session.scalars(sa.select(Contact)).first()
        assert contact is not None
        assert contact.email_index == keyed_hash(db.keys, "email", EMAIL)
        assert contact.phone_index == keyed_hash(db.keys, "phone", PHONE)
    assert _readable(api, flow["code"]) == before
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM allocations")


def test_sealed_values_do_not_tell_arms_or_instrument_lists_apart_by_length():
    # A sealed value is as long as its plain text plus a constant: unpadded, the arm
    # codes of the demo study and the instrument lists of each arm had lengths of their
    # own in a copy of the database.
    from app.db.sealed import SealedJSON, SealedText, attach_keys
    from app.keys import Keys

    engine = sa.create_engine("sqlite://")
    attach_keys(engine, Keys(b"a server key of thirty-two bytes or more!"))
    dialect = engine.dialect
    arm = SealedText("allocations.arm")
    arms = {code: arm.process_bind_param(code, dialect) for code in ARM_LABELS}
    assert len({len(v or b"") for v in arms.values()}) == 1
    assert {code: arm.process_result_value(v, dialect) for code, v in arms.items()} == {
        code: code for code in ARM_LABELS
    }
    lists = SealedJSON("survey_instances.instruments")
    chosen = [["who5", "phq9"], ["who5", "phq9", "group_experience"]]
    sealed = [lists.process_bind_param(value, dialect) for value in chosen]
    assert len({len(v or b"") for v in sealed}) == 1
    assert [lists.process_result_value(v, dialect) for v in sealed] == chosen
