"""Blinded and unblinded exports, codebook and data package through the API."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from frictionless import Package, validate

from app.config import Settings
from app.db.engine import Database
from app.demo import demo_definition, load_demo
from app.main import create_app
from app.participants.models import Participant
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import export_order, pseudonym
from tests.exports.safety_seed import AE_NOTE, AE_TERM, PD_ACTION, PD_TEXT, seed_safety
from tests.helpers import BASELINE_ANSWERS, Api, bearer, english_only, enrollment, study_today

STUDY = "leak-study"
BASE = f"/api/v1/studies/{STUDY}"
ARM_LABELS = {
    "listserv": "Label-Alpha-Listserv",
    "bulletin_board": "Label-Beta-Board",
    "control": "Label-Gamma-Control",
}
SECRET_TEXT = "SECRET-FREE-TEXT-\u00e9\u4e2d"
SHARED_TEXT = "SHAREABLE-TEXT"
BIRTHDAY = "2019-03-14"
PEOPLE = 9


def _definition() -> dict[str, Any]:
    """The demo study, with arm labels, free text and a date item easy to search for, and
    the 4-month survey open from randomization (so that it can be answered now)."""
    document = english_only(demo_definition())
    document["slug"] = STUDY
    document["code_prefix"] = "LK"
    for arm in document["arms"]:
        arm["label"] = ARM_LABELS[arm["code"]]
    document["instruments"].append(
        {
            "code": "background",
            "title": "About you",
            "items": [
                {"code": "diagnosed_on", "text": "When were you diagnosed?", "type": "date"},
                {"code": "notes", "text": "Anything else?", "type": "text"},
                {"code": "job", "text": "Your work", "type": "text", "export": True},
                {
                    "code": "supports",
                    "text": "Who supports you?",
                    "type": "multi_choice",
                    "options": [["family", "Family"], ["friends", "Friends"]],
                },
            ],
        }
    )
    # A timepoint made only of the arm-limited instrument: scheduled for two arms alone.
    document["schedule"].append(
        {
            "code": "sessions",
            "anchor": "randomization",
            "day": 30,
            "close_after": 7,
            "instruments": ["group_experience"],
        }
    )
    document["blinding"]["arm_visible_to"] = ["admin", "unblinded_statistician"]
    for timepoint in document["schedule"]:
        if timepoint["code"] == "baseline":
            timepoint["instruments"].append("background")
        if timepoint["code"] == "month_4":
            timepoint.update(day=0, open_before=0)
    return document


def _get(api, path: str, token: str, **params: Any):
    return api.client.get(f"{BASE}{path}", params=params, headers=bearer(token))


# The trial is built once per module and backend (`module_settings`), not once per test:
# building it (nine participants, their surveys, the safety records) was most of the
# time of the exports' tests. The tests read it and add users, exports and audit
# records, which none of them counts; a test that changes the trial (the lock) comes
# last in its module. Modules that use `trial` import `api` and `db` from here too.
@pytest.fixture(scope="module")
def db(module_settings: Settings) -> Iterator[Database]:
    database = Database(module_settings)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def api(module_settings: Settings, db: Database) -> Iterator[Api]:
    """The demo study loaded, and an `Api` helper of the module's application."""
    with db.begin() as session:
        loaded = load_demo(session)
    with TestClient(create_app(module_settings)) as client:
        yield Api(client, admin_token=loaded.token)


@pytest.fixture(scope="module")
def trial(api, db):
    """A small trial: nine participants enrolled (with known names, emails, phones),
    baselines completed with free text and a date, randomized, month 4 answered by the
    online arms (the arm-limited instrument too); one withdrawn; adverse events and
    deviations recorded (`safety_seed`)."""
    admin = api.admin_token
    created = api.client.post("/api/v1/studies", json=_definition(), headers=bearer(admin))
    assert created.status_code == 201, created.text
    for site in ("PHL", "PIT"):
        added = api.client.post(
            f"{BASE}/sites", json={"code": site, "name": site}, headers=bearer(admin)
        )
        assert added.status_code == 201, added.text
    assert api.client.post(f"{BASE}/activate", headers=bearer(admin)).status_code == 200
    people = []
    for n in range(PEOPLE):
        contact = {
            "name": f"Zebulon Quartermaine{n}",
            "email": f"leak{n}@hidden.example",
            "phone": f"+1-215-555-01{n:02d}",
        }
        body = enrollment(("PHL", "PIT")[n % 2], ("bipolar", "depressive")[n % 2])
        body["contact"] = contact
        enrolled = api.client.post(f"{BASE}/participants", json=body, headers=bearer(admin))
        assert enrolled.status_code == 201, enrolled.text
        code = enrolled.json()["code"]
        answers = BASELINE_ANSWERS | {
            "diagnosed_on": BIRTHDAY,
            "notes": SECRET_TEXT,
            "job": SHARED_TEXT,
            "supports": ["family", "friends"],
        }
        api.complete_survey(code, study=STUDY, answers=answers)
        randomized = api.randomize(admin, code, study=STUDY)
        assert randomized.status_code == 200, randomized.text
        arm = randomized.json()["arm"]
        if arm != "control":
            api.complete_survey(
                code,
                study=STUDY,
                timepoint="month_4",
                answers=BASELINE_ANSWERS
                | {"gx_frequency": 2, "gx_helpful": 4, "gx_comments": SECRET_TEXT},
            )
        people.append({"code": code, "arm": arm, **contact})
    withdrawn = api.client.post(
        f"{BASE}/participants/{people[-1]['code']}/withdraw",
        json={"reason": "moved away"},
        headers=bearer(admin),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    seed_safety(db, STUDY, [p["code"] for p in people])
    return people


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _every_export(api, token: str) -> dict[str, bytes]:
    """Every blinded export format and shape, the codebooks and the package's files."""
    pulled: dict[str, bytes] = {}
    for fmt in ("csv", "json"):
        for shape in ("long", "wide"):
            got = _get(api, "/exports/blinded", token, format=fmt, shape=shape)
            assert got.status_code == 200, got.text
            pulled[f"blinded.{shape}.{fmt}"] = got.content
            codebook = _get(api, "/exports/codebook", token, format=fmt, shape=shape)
            assert codebook.status_code == 200, codebook.text
            pulled[f"codebook.{shape}.{fmt}"] = codebook.content
    for fmt in ("dta", "sav"):
        for shape in ("long", "wide"):
            got = _get(api, "/exports/blinded", token, format=fmt, shape=shape)
            assert got.status_code == 200, got.text
            pulled[f"blinded.{shape}.{fmt}"] = got.content
    for fmt in ("csv", "json", "dta", "sav"):
        got = _get(api, "/exports/participants", token, format=fmt)
        assert got.status_code == 200, got.text
        pulled[f"participants.{fmt}"] = got.content
        for table in ("adverse_events", "deviations"):
            got = _get(api, "/exports/blinded", token, format=fmt, table=table)
            assert got.status_code == 200, got.text
            pulled[f"{table}.{fmt}"] = got.content
            if fmt in ("csv", "json"):
                book = _get(api, "/exports/codebook", token, format=fmt, table=table)
                assert book.status_code == 200, book.text
                pulled[f"codebook.{table}.{fmt}"] = book.content
    package = _get(api, "/exports/package", token)
    assert package.status_code == 200
    pulled["package.zip"] = package.content
    with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
        for name in archive.namelist():
            pulled[f"package/{name}"] = archive.read(name)
    for kind in ("consort", "retention", "balance"):
        report = _get(api, f"/reports/{kind}", token)
        assert report.status_code == 200, report.text
        pulled[f"report.{kind}"] = report.content
    pulled["report.consort.svg"] = _get(api, "/reports/consort", token, format="svg").content
    return pulled


def test_a_statistician_never_receives_a_name_email_phone_code_date_free_text_or_arm(api, trial):
    statistician = api.user("statistician")
    pulled = _every_export(api, statistician)
    # Today as the study's zone and as UTC write it (between midnight UTC and New York's
    # they differ): an export dated either way would carry a date of this test's events.
    days = {study_today(), datetime.now(UTC).date()}
    forbidden = [SECRET_TEXT, BIRTHDAY]
    forbidden += [d.isoformat() for d in days] + [d.strftime("%d/%m/%Y") for d in days]
    forbidden += ["Zebulon", "Quartermaine", "hidden.example", "555-01"]
    forbidden += [p["code"] for p in trial]
    forbidden += list(ARM_LABELS) + list(ARM_LABELS.values())
    forbidden += ["group_experience", "gx_"]  # limited to two arms: it would reveal them
    forbidden += ["sessions"]  # a timepoint scheduled for those arms alone
    forbidden += [AE_TERM, AE_NOTE, PD_TEXT, PD_ACTION]  # safety records' free text
    for name, content in pulled.items():
        for needle in forbidden:
            assert needle.encode() not in content, (name, needle)
            assert needle.encode("utf-16-le") not in content, (name, needle)
    # The search finds what is there: free text the study marked for export, and a score.
    assert SHARED_TEXT.encode() in pulled["blinded.long.csv"]
    rows = _csv(pulled["blinded.long.csv"].decode())
    assert {float(r["who5_raw"]) for r in rows if r["timepoint"] == "baseline"} == {15.0}


def test_the_unblinded_export_adds_the_allocation_and_needs_a_reason(api, trial):
    admin = api.admin_token
    assert _get(api, "/exports/unblinded", admin).status_code == 422
    assert _get(api, "/exports/unblinded", admin, reason="").status_code == 422
    got = _get(api, "/exports/unblinded", admin, reason="DSMB review")
    rows = _csv(got.text)
    first = rows[0]
    assert first["arm_label"] == ARM_LABELS[first["arm"]]
    assert first["stratum"].startswith("site=")
    assert int(first["position"]) <= int(first["block_size"])
    assert len(rows) == PEOPLE * 3  # long: every participant at every timepoint
    audit = api.client.get(f"{BASE}/audit", params={"limit": 1000}, headers=bearer(admin))
    records = [r for r in audit.json()["items"] if r["action"].startswith("export.")]
    started = [r for r in records if r["action"] == "export.started"]
    completed = [r for r in records if r["action"] == "export.completed"]
    assert started[-1]["reason"] == "DSMB review"
    assert completed[-1]["changes"]["rows"]["new"] == PEOPLE * 3
    assert completed[-1]["changes"]["sha256"]["new"] == _sha256(got.content)


def _sha256(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


def test_the_codebook_covers_every_column_and_the_package_validates(api, trial, tmp_path):
    statistician = api.user("statistician")
    for shape in ("long", "wide"):
        data = _get(api, "/exports/blinded", statistician, shape=shape).text
        header = next(csv.reader(io.StringIO(data)))
        book = _get(api, "/exports/codebook", statistician, shape=shape).json()["columns"]
        assert [c["name"] for c in book] == header
        as_csv = _csv(_get(api, "/exports/codebook", statistician, shape=shape, format="csv").text)
        assert [c["name"] for c in as_csv] == header
        types = {c["name"]: c["type"] for c in book}
        frame = pd.read_csv(io.StringIO(data), dtype=str, keep_default_na=False)
        for column, kind in types.items():
            present = frame[column][frame[column] != ""]
            if kind == "integer":
                present.astype(int)
            elif kind == "number":
                present.astype(float)
            elif kind == "boolean":
                assert set(present) <= {"true", "false"}, column
    json_rows = _get(api, "/exports/blinded", statistician, format="json").json()
    assert len(json_rows) == PEOPLE * 3 and json_rows[0]["days_from_randomization"] is not None

    package = _get(api, "/exports/package", statistician)
    with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
        archive.extractall(tmp_path)
    report = validate(str(tmp_path / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    described = Package(str(tmp_path / "datapackage.json"))
    names = {"blinded_long", "blinded_wide", "participants", "adverse_events", "deviations"}
    assert {r.name for r in described.resources} == names
    assert len(described.get_resource("adverse_events").read_rows()) == 2


def test_tampering_shows_in_the_package_validation(api, trial, tmp_path):
    statistician = api.user("statistician")
    package = _get(api, "/exports/package", statistician)
    with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
        archive.extractall(tmp_path)
    path = tmp_path / "blinded_long.csv"
    text = path.read_text().splitlines()
    header = text[0].split(",")
    row = text[1].split(",")
    row[header.index("who5_1")] = "99"  # not one of the item's values
    path.write_text("\r\n".join([text[0], ",".join(row), *text[2:]]) + "\r\n")
    assert not validate(str(tmp_path / "datapackage.json")).valid


@pytest.mark.parametrize(
    ("role", "blinded", "unblinded", "reports"),
    [
        ("statistician", 200, 403, 200),
        ("unblinded_statistician", 200, 200, 200),
        ("coordinator", 403, 403, 200),
    ],
)
def test_role_gating_of_exports_and_reports(api, trial, role, blinded, unblinded, reports):
    token = api.user(role, *(("PHL",) if role == "coordinator" else ()), study=STUDY)
    for path in ("/exports/blinded", "/exports/codebook", "/exports/package"):
        assert _get(api, path, token).status_code == blinded, path
    assert (
        _get(api, "/exports/unblinded", token, reason="DMC interim review").status_code == unblinded
    )
    for path in ("/reports/consort", "/reports/retention", "/reports/balance"):
        assert _get(api, path, token).status_code == reports, path
    anonymous = api.client.get(f"{BASE}/exports/blinded")
    assert anonymous.status_code == 401


def test_a_blind_role_sees_group_codes_in_reports_and_an_open_one_the_arms(api, trial):
    statistician = api.user("statistician")
    coded = _get(api, "/reports/consort", statistician).json()
    assert sorted(g["group"] for g in coded["groups"]) == ["G1", "G2", "G3"]
    assert all(g["label"] == g["group"] for g in coded["groups"])
    opened = _get(api, "/reports/consort", api.admin_token).json()
    assert {g["label"] for g in opened["groups"]} == set(ARM_LABELS.values())
    balance = _get(api, "/reports/balance", statistician).json()["items"]
    assert all(set(b["counts"]) == {"G1", "G2", "G3"} for b in balance)
    assert json.dumps(coded).count("Label-") == 0


def test_rows_come_in_a_keyed_order_the_same_every_time_not_the_order_of_enrollment(api, db, trial):
    statistician = api.user("statistician")
    wide = _csv(_get(api, "/exports/blinded", statistician, shape="wide").text)
    pseudonyms = [r["pseudonym"] for r in wide]
    assert len(set(pseudonyms)) == PEOPLE
    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        key = studies.blinding_key_of(session, study)
        codes = session.scalars(
            sa.select(Participant.code).where(Participant.study_id == study.id)
        ).all()
    by_order = sorted(codes, key=lambda code: export_order(key, code))
    assert pseudonyms == [pseudonym(key, code) for code in by_order]
    long = _csv(_get(api, "/exports/blinded", statistician).text)
    assert [r["pseudonym"] for r in long[::3]] == pseudonyms
    again = _csv(_get(api, "/exports/blinded", statistician, shape="wide").text)
    assert [r["pseudonym"] for r in again] == pseudonyms


def test_a_blind_coordinator_sees_the_randomized_pooled_never_split_by_group(api, trial):
    coordinator = api.user("coordinator", "PHL", study=STUDY)
    consort = _get(api, "/reports/consort", coordinator).json()
    assert [(g["group"], g["randomized"]) for g in consort["groups"]] == [("all", PEOPLE)]
    assert [t["timepoint"] for t in consort["groups"][0]["timepoints"]] == [
        "baseline",
        "month_4",
        "month_12",
    ]  # not "sessions": only two arms have it
    balance = _get(api, "/reports/balance", coordinator).json()["items"]
    assert all(list(b["counts"]) == ["all"] for b in balance)
    retention = _get(api, "/reports/retention", coordinator).json()["items"]
    assert {r["group"] for r in retention} == {"all"}
    admin = _get(api, "/reports/consort", api.admin_token).json()
    assert "sessions" in [t["timepoint"] for t in admin["groups"][0]["timepoints"]]


def test_groups_are_the_arms_partition_stable_across_exports_and_lock(api, trial):
    # Last of the module: it locks the study that the other tests share.
    statistician = api.user("statistician")
    blinded = _csv(_get(api, "/exports/blinded", statistician, shape="wide").text)
    unblinded = _get(
        api, "/exports/unblinded", api.admin_token, shape="wide", reason="DMC interim review"
    )
    assert unblinded.status_code == 200, unblinded.text
    truth = {r["pseudonym"]: r["arm"] for r in _csv(unblinded.text)}
    groups = {r["pseudonym"]: r["group"] for r in blinded}
    assert set(truth) == set(groups) and len(groups) == PEOPLE
    mapping = {(groups[p], truth[p]) for p in groups}
    assert len({g for g, _ in mapping}) == len(mapping) == len({a for _, a in mapping})
    assert {g for g, _ in mapping} <= {"G1", "G2", "G3"}
    assert sorted(truth.values()) == sorted(p["arm"] for p in trial)

    locked = api.client.post(f"{BASE}/lock", headers=bearer(api.admin_token))
    assert locked.status_code == 200, locked.text
    assert locked.json()["secret"]  # the randomization secret is out...
    after = _csv(_get(api, "/exports/blinded", statistician, shape="wide").text)
    assert {r["pseudonym"]: r["group"] for r in after} == groups  # ...the groups hold
