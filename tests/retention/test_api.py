"""The contact log, the locator and missed-visit reasons through the API (SPEC 11, issue
17 items 2 and 5): who may use them (another site's participant is 404), sealed at rest,
alternate contacts purged at the study's lock, a reason only for a missed survey, and
shown in the survey, the blinded export and the retention report.

One application and database per backend for the module (the demo study, and a study
that is locked by its own test); each test makes its own participants.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.auth import service as auth
from app.config import Settings
from app.db.engine import Database
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.demo import DEMO_ADMIN_EMAIL, demo_definition, load_demo
from app.main import create_app
from app.participants.models import Contact, Participant
from app.studies import service as studies
from app.studies.validation import parse_definition
from tests.helpers import STUDY, Api, bearer
from tests.surveys.test_api import _shift_window

S = f"/api/v1/studies/{STUDY}"
CLOSING = "closing-study"
NOTE = "Spoke with Quentin Zarathustra about the move to Harrisburg"
SISTER = {"name": "Wilhelmina Fairweather", "relation": "sister", "phone": "(215) 898-5000"}


def today() -> str:
    """Today in the demo study's time zone (America/New_York), never the machine's."""
    return datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date().isoformat()


@dataclass
class Env:
    client: TestClient
    db: Database
    api: Api
    coordinator: str  # of PHL
    other: str  # a coordinator of PIT only


@pytest.fixture(scope="module")
def env(module_settings: Settings) -> Iterator[Env]:
    db = Database(module_settings)
    with db.begin() as session:
        loaded = load_demo(session)
        actor = auth.principal_of(auth.find_user(session, email=DEMO_ADMIN_EMAIL))  # type: ignore[arg-type]
        document = demo_definition() | {"slug": CLOSING}
        closing = studies.create_study(session, definition=parse_definition(document), actor=actor)
        studies.add_site(session, study=closing, code="PHL", name="Philadelphia", actor=actor)
        studies.activate_study(session, study=closing, actor=actor)
    with TestClient(create_app(module_settings), raise_server_exceptions=False) as client:
        api = Api(client, admin_token=loaded.token)
        yield Env(client, db, api, api.user("coordinator", "PHL"), api.user("coordinator", "PIT"))
    db.dispose()


def _post(env: Env, path: str, body: object, token: str | None = None) -> object:
    return env.client.post(f"{S}{path}", json=body, headers=bearer(token or env.coordinator))


def _audit(env: Env, action: str) -> list[dict]:
    records = env.client.get(f"{S}/audit?limit=1000", headers=bearer(env.api.admin_token)).json()[
        "items"
    ]
    return [r for r in records if r["action"] == action]


def test_contact_attempts_are_listed_newest_first_with_who_made_them(env: Env) -> None:
    code = env.api.enroll(env.coordinator)
    first = _post(
        env, f"/participants/{code}/contacts", {"method": "phone", "outcome": "no_answer"}
    )
    assert first.status_code == 201, first.text
    second = _post(
        env,
        f"/participants/{code}/contacts",
        {
            "method": "text",
            "outcome": "reached",
            "note": NOTE,
            "next_step": "Call back on Friday",
            "next_step_on": today(),
            "timepoint": "baseline",
        },
    )
    assert second.status_code == 201, second.text
    listed = env.client.get(f"{S}/participants/{code}/contacts", headers=bearer(env.coordinator))
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(i["method"], i["outcome"]) for i in items] == [
        ("text", "reached"),
        ("phone", "no_answer"),
    ]
    assert items[0]["note"] == NOTE and items[0]["next_step_on"] == today()
    assert items[0]["timepoint"] == "baseline" and items[0]["made_by"].startswith("coordinator-")
    logged = [r for r in _audit(env, "contact.logged") if r["entity_id"].startswith(code)]
    assert [r["entity_id"] for r in logged] == [code, f"{code}:baseline"]
    assert len(logged) == 2
    assert logged[-1]["changes"]["outcome"] == {"old": None, "new": "reached"}
    assert "Zarathustra" not in str(logged) and "Friday" not in str(logged)


def test_another_sites_coordinator_gets_404_and_a_statistician_403(env: Env) -> None:
    code = env.api.enroll(env.coordinator)
    statistician = env.api.user("statistician")
    for path, body in (
        (f"/participants/{code}/contacts", {"method": "phone", "outcome": "reached"}),
        (f"/participants/{code}/alternate-contacts", SISTER | {"permission_on": today()}),
        (f"/participants/{code}/surveys/baseline/missed-reason", {"reason": "declined"}),
    ):
        assert _post(env, path, body, env.other).status_code == 404, path
        assert env.client.get(f"{S}{path}", headers=bearer(env.other)).status_code in (404, 405)
        assert _post(env, path, body, statistician).status_code == 403, path


def test_an_alternate_contact_needs_the_participants_permission_and_a_way_to_reach_them(
    env: Env,
) -> None:
    code = env.api.enroll(env.coordinator)
    path = f"/participants/{code}/alternate-contacts"
    without = _post(env, path, SISTER)
    assert without.status_code == 422
    assert ["body", "permission_on"] in [e["loc"] for e in without.json()["errors"]]
    nothing = _post(env, path, {"name": "N", "relation": "friend", "permission_on": today()})
    assert nothing.status_code == 422 and nothing.json()["errors"][0]["loc"][-1] == "phone"
    wrong = _post(env, path, SISTER | {"phone": "12", "permission_on": today()})
    assert wrong.status_code == 422
    added = _post(env, path, SISTER | {"permission_on": today(), "email": "w@example.org"})
    assert added.status_code == 201, added.text
    assert added.json()["phone"] == "+12158985000"  # E.164, read in the study's region
    listed = env.client.get(f"{S}{path}", headers=bearer(env.coordinator)).json()["items"]
    assert [a["name"] for a in listed] == ["Wilhelmina Fairweather"]

    removed = _post(env, f"{path}/{added.json()['id']}/remove", None)
    assert removed.status_code == 200, removed.text
    assert removed.json()["name"] is None and removed.json()["removed_at"]
    again = _post(env, f"{path}/{added.json()['id']}/remove", None)
    assert again.status_code == 409
    assert env.client.get(f"{S}{path}", headers=bearer(env.coordinator)).json()["items"] == []
    kept = env.client.get(f"{S}{path}?removed=true", headers=bearer(env.coordinator))
    assert [a["phone"] for a in kept.json()["items"]] == [None]


def test_notes_and_alternate_contacts_are_sealed_at_rest(env: Env) -> None:
    code = env.api.enroll(env.coordinator)
    _post(
        env,
        f"/participants/{code}/contacts",
        {"method": "phone", "outcome": "reached", "note": NOTE},
    )
    _post(env, f"/participants/{code}/alternate-contacts", SISTER | {"permission_on": today()})
    with env.db.engine.connect() as connection:
        cells = [
            str(cell)
            for table in ("contact_attempts", "alternate_contacts")
            for row in connection.execute(sa.text(f"SELECT * FROM {table}"))
            for cell in row
        ]
    assert cells
    for secret in ("Zarathustra", "Wilhelmina", "Fairweather", "sister", "2158985000"):
        assert not any(secret in cell for cell in cells), secret


def test_a_replayed_alternate_contact_answer_keeps_none_of_its_details(env: Env) -> None:
    """Stored answers of retried requests outlive a removal and the lock's purge: they
    keep no name, relation, phone or email of the other person (a replay: null)."""
    code = env.api.enroll(env.coordinator)
    path = f"{S}/participants/{code}/alternate-contacts"
    body = SISTER | {"email": "wf@example.org", "permission_on": today()}
    sent = {**bearer(env.coordinator), "Idempotency-Key": f"alt-{code}"}
    first = env.client.post(path, json=body, headers=sent)
    assert first.status_code == 201 and first.json()["name"] == SISTER["name"], first.text
    replay = env.client.post(path, json=body, headers=sent)
    assert replay.headers.get("Idempotent-Replayed") == "true", replay.text
    assert replay.status_code == 201
    answer = replay.json()
    assert (answer["name"], answer["relation"], answer["phone"], answer["email"]) == (None,) * 4
    assert answer["id"] == first.json()["id"]
    for secret in ("Wilhelmina", "sister", "2158985000", "wf@example.org"):
        assert secret not in replay.text, secret


def test_locking_the_study_purges_every_alternate_contact_audited_with_the_count(
    env: Env,
) -> None:
    admin = bearer(env.api.admin_token)
    base = f"/api/v1/studies/{CLOSING}"
    codes = [env.api.enroll(env.api.admin_token, study=CLOSING) for _ in range(2)]
    for code in codes:
        made = env.client.post(
            f"{base}/participants/{code}/alternate-contacts",
            json=SISTER | {"permission_on": today()},
            headers=admin,
        )
        assert made.status_code == 201, made.text
    locked = env.client.post(f"{base}/lock", headers=admin)
    assert locked.status_code == 200, locked.text
    for code in codes:
        shown = env.client.get(f"{base}/participants/{code}/alternate-contacts", headers=admin)
        [row] = shown.json()["items"]
        assert (row["name"], row["relation"], row["phone"], row["email"]) == (None,) * 4
        assert row["purged_at"] is not None
    trail = env.client.get(f"{base}/audit?limit=1000", headers=admin).json()["items"]
    [purge] = [r for r in trail if r["action"] == "alternate_contact.purged"]
    assert purge["changes"] == {"purged": {"old": None, "new": 2}}
    refused = env.client.post(
        f"{base}/participants/{codes[0]}/alternate-contacts",
        json=SISTER | {"permission_on": today()},
        headers=admin,
    )
    assert refused.status_code == 409  # locked: no more changes


def test_a_missed_reason_is_only_for_a_missed_survey_and_is_shown_exported_and_counted(
    env: Env,
) -> None:
    code = env.api.enroll(env.coordinator)
    path = f"/participants/{code}/surveys/baseline/missed-reason"
    open_now = _post(env, path, {"reason": "unreachable"})
    assert open_now.status_code == 409, open_now.text
    assert env.api.randomize(env.coordinator, code).status_code == 200
    _shift_window(env.db, code, "month_4", days=-200)  # closed long ago: missed
    given = _post(
        env,
        f"/participants/{code}/surveys/month_4/missed-reason",
        {"reason": "too_unwell", "note": "In hospital"},
    )
    assert given.status_code == 200, given.text
    assert given.json()["status"] == "missed"
    survey = env.client.get(
        f"{S}/participants/{code}/surveys/month_4", headers=bearer(env.coordinator)
    ).json()
    assert (survey["missed_reason"], survey["missed_note"]) == ("too_unwell", "In hospital")
    [audited] = [r for r in _audit(env, "survey.missed_reason") if r["entity_id"].startswith(code)]
    assert audited["changes"] == {"missed_reason": {"old": None, "new": "too_unwell"}}

    admin = bearer(env.api.admin_token)
    wide = env.client.get(f"{S}/exports/blinded?format=csv&shape=wide", headers=admin)
    rows = list(csv.DictReader(io.StringIO(wide.text)))
    assert "month_4_missed_reason" in rows[0]
    assert "too_unwell" in [r["month_4_missed_reason"] for r in rows]
    codebook = env.client.get(f"{S}/exports/codebook?format=json", headers=admin).json()
    [column] = [c for c in codebook["columns"] if c["name"] == "missed_reason"]
    assert {"value": "too_unwell", "label": "Too unwell to take part"} in column["values"]
    report = env.client.get(f"{S}/reports/retention", headers=admin).json()
    counts = {m["timepoint"]: m["counts"] for m in report["missed_reasons"]}
    assert counts["month_4"]["too_unwell"] >= 1 and set(counts["month_4"]) == {
        "unreachable",
        "declined",
        "too_unwell",
        "other",
        "not_given",
    }


def _stored(env: Env) -> tuple[int, ...]:
    with env.db.engine.connect() as connection:
        return tuple(
            connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("contact_attempts", "alternate_contacts", "audit_records")
        )


ATTACKS: list[tuple[str, object]] = [
    ("contacts", {"method": "phone", "outcome": "reached", "note": "x" * 2001}),
    ("contacts", {"method": "carrier_pigeon", "outcome": "reached"}),
    ("contacts", {"method": "phone", "outcome": "reached", "next_step_on": 1700000000}),
    ("contacts", {"method": "phone", "outcome": "reached", "next_step_on": "2000-01-01"}),
    ("contacts", {"method": "phone", "outcome": "reached", "next_step_on": "9999-12-31"}),
    ("contacts", {"method": "phone", "outcome": "reached", "timepoint": "no_such_survey"}),
    ("contacts", {"method": "phone", "outcome": "reached", "note": "a\u0000b"}),
    ("contacts", {"method": "phone", "outcome": "reached", "note": "\ud800"}),
    ("contacts", {"method": ["phone"], "outcome": {"deep": [[[[[]]]]]}}),
    ("contacts", {"method": "phone", "outcome": "reached", "admin": True}),
    ("contacts", [1] * 100_000),
    ("alternate-contacts", SISTER | {"permission_on": "2999-01-01"}),
    ("alternate-contacts", SISTER | {"permission_on": "today"}),
    ("alternate-contacts", SISTER | {"phone": "+1" + "9" * 60, "permission_on": "2026-01-01"}),
    ("alternate-contacts", SISTER | {"phone": "call me", "permission_on": "2026-01-01"}),
    ("alternate-contacts", SISTER | {"email": "not-an-email", "permission_on": "2026-01-01"}),
    ("alternate-contacts", SISTER | {"name": "", "permission_on": "2026-01-01"}),
    ("alternate-contacts", SISTER | {"name": "n" * 201, "permission_on": "2026-01-01"}),
    ("surveys/baseline/missed-reason", {"reason": "abducted_by_aliens"}),
    ("surveys/baseline/missed-reason", {"reason": "other", "note": "x" * 2001}),
    ("surveys/" + "t" * 65 + "/missed-reason", {"reason": "other"}),
    ("alternate-contacts/99999999999/remove", None),
    ("alternate-contacts/0/remove", None),
]


def test_attacker_inputs_are_refused_with_4xx_and_store_nothing(env: Env) -> None:
    code = env.api.enroll(env.coordinator)
    before = _stored(env)
    for where, body in ATTACKS:
        response = env.client.post(  # written out by hand: lone surrogates and all
            f"{S}/participants/{code}/{where}",
            content=json.dumps(body).encode(),
            headers=bearer(env.coordinator) | {"content-type": "application/json"},
        )
        assert 400 <= response.status_code < 500, (where, body, response.text)
        assert response.headers["content-type"] == "application/problem+json", where
    for query in ("limit=0", "limit=1001", "cursor=%00", "cursor=zzzz", "removed=maybe"):
        for what in ("contacts", "alternate-contacts")[query.startswith("removed") :]:
            got = env.client.get(
                f"{S}/participants/{code}/{what}?{query}", headers=bearer(env.coordinator)
            )
            assert got.status_code == 422, (what, query, got.text)
    assert (
        env.client.get(f"{S}/calls?limit=5000", headers=bearer(env.coordinator)).status_code == 422
    )
    assert _stored(env) == before


def test_contact_details_are_corrected_in_e164_with_their_hashes_audited_without_values(
    env: Env,
) -> None:
    code = env.api.enroll(env.coordinator)
    path = f"{S}/participants/{code}/contact"
    me = bearer(env.coordinator)
    assert env.client.put(path, json={"phone": "12"}, headers=me).status_code == 422
    refused = env.client.put(path, json={"name": "", "email": "x"}, headers=me)
    assert refused.status_code == 422
    assert env.client.put(path, json={}, headers=me).status_code == 422
    for bad in (
        {"phone": "\x00" * 65},
        {"name": 5},
        {"email": ["a@example.org"]},
        {"name": "x" * 201},
        {"name": None},
        {"age": 1},
        [],
    ):
        assert env.client.put(path, json=bad, headers=me).status_code == 422, bad
    other = env.client.put(path, json={"phone": "215-898-5000"}, headers=bearer(env.other))
    assert other.status_code == 404
    fixed = env.client.put(
        path,
        json={"name": "Quinn Vantongeren", "phone": "(215) 898-5000", "email": None},
        headers={**me, "Idempotency-Key": f"contact-{code}"},
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json() == {"participant": code, "changed": ["email", "name", "phone"]}
    shown = env.client.get(f"{S}/participants/{code}", headers=me).json()["contact"]
    assert shown == {"name": "Quinn Vantongeren", "email": None, "phone": "+12158985000"}
    with env.db.begin() as session:
        person = session.scalars(sa.select(Participant).where(Participant.code == code)).one()
        contact = session.get_one(Contact, person.id)
        keys = sealing_keys_of(session)
        assert contact.phone_index == keyed_hash(keys, "phone", "+12158985000")
        assert contact.email_index is None
    [record] = [r for r in _audit(env, "participant.contact_corrected") if r["entity_id"] == code]
    assert record["changes"] == {"fields": {"old": None, "new": ["email", "name", "phone"]}}
    assert "Vantongeren" not in json.dumps(record)
