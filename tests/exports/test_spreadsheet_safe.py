"""CSV formula injection: no cell of any CSV the product writes starts like a spreadsheet
formula unless it is a number; the codebook and the package say how such text was
escaped; the JSON export keeps the text as it was."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from typing import Any

import pandas as pd
import pytest

from app.demo import demo_definition
from app.exports.formats import ESCAPING, spreadsheet_safe
from tests.helpers import BASELINE_ANSWERS, bearer, english_only, enrollment
from tests.test_cli import trialdesk

STUDY = "csv-study"
BASE = f"/api/v1/studies/{STUDY}"
FORMULA = '=HYPERLINK("http://x","y")'
# What each participant wrote as their job, and how a spreadsheet-safe CSV carries it.
JOBS = {
    FORMULA: "'" + FORMULA,
    "@SUM(1+1)": "'@SUM(1+1)",
    "+1 555 0100": "'+1 555 0100",
    "-0.5": "-0.5",  # a number stays a number
    "'quoted": "''quoted",  # an apostrophe is doubled, so the rule can be undone
    "plain words": "plain words",
}
LABEL = "=cmd|' /C calc'!A0"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_study() -> dict[str, Any]:
    """The demo study with a free-text item marked `export: true` at baseline, and an arm
    label and an item text that look like formulas."""
    document = english_only(demo_definition())
    document["slug"] = STUDY
    document["code_prefix"] = "CS"
    document["arms"][0]["label"] = LABEL
    document["instruments"].append(
        {
            "code": "background",
            "title": "About you",
            "items": [{"code": "job", "text": LABEL, "type": "text", "export": True}],
        }
    )
    document["blinding"]["arm_visible_to"] = ["admin", "unblinded_statistician"]
    for timepoint in document["schedule"]:
        if timepoint["code"] == "baseline":
            timepoint["instruments"].append("background")
    return document


def load_csv_study(api) -> None:  # type: ignore[no-untyped-def]
    """The study, active, with one randomized participant per job of `JOBS`."""
    admin = api.admin_token
    created = api.client.post("/api/v1/studies", json=csv_study(), headers=bearer(admin))
    assert created.status_code == 201, created.text
    added = api.client.post(
        f"{BASE}/sites", json={"code": "PHL", "name": "PHL"}, headers=bearer(admin)
    )
    assert added.status_code == 201, added.text
    assert api.client.post(f"{BASE}/activate", headers=bearer(admin)).status_code == 200
    for job in JOBS:
        enrolled = api.client.post(
            f"{BASE}/participants", json=enrollment("PHL"), headers=bearer(admin)
        )
        assert enrolled.status_code == 201, enrolled.text
        code = enrolled.json()["code"]
        api.complete_survey(code, study=STUDY, answers=BASELINE_ANSWERS | {"job": job})
        assert api.randomize(admin, code, study=STUDY).status_code == 200


def assert_spreadsheet_safe(text: str) -> list[list[str]]:
    """Every cell of the CSV: none starts like a formula unless it is a number."""
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        for value in row:
            assert not value.startswith(TRIGGERS) or NUMBER.fullmatch(value), value
    return rows


def assert_jobs_escaped(text: str) -> None:
    """The CSV is safe, and pandas reads each job as `JOBS` says it is written."""
    assert_spreadsheet_safe(text)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    (column,) = [c for c in frame.columns if c == "job" or c.endswith("_job")]
    written = {value for value in frame[column] if value}
    assert written == set(JOBS.values())


def assert_codebook_says_so(text: str) -> None:
    assert_spreadsheet_safe(text)
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(text))}
    job = next(r for name, r in rows.items() if name == "job" or name.endswith("_job"))
    assert job["label"] == "'" + LABEL
    assert job["csv_text"] == ESCAPING
    assert all(r["csv_text"] == "" for r in rows.values() if r["type"] != "string")


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+A1", "'+A1"),
        ("-A1", "'-A1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'x", "''x"),
        ("-3", "-3"),
        ("-0.5", "-0.5"),
        ("+2e5", "+2e5"),
        ("-", "'-"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_spreadsheet_safe_escapes_what_looks_like_a_formula_and_keeps_numbers(text, written):
    assert spreadsheet_safe(text) == written


def test_every_api_csv_is_spreadsheet_safe_and_the_json_keeps_the_text(api):
    load_csv_study(api)
    statistician = api.user("statistician", study=STUDY)
    reason = {"reason": "DMC interim review"}
    for shape in ("long", "wide"):
        params: dict[str, str] = {"shape": shape, "format": "csv"}
        blinded = api.client.get(
            f"{BASE}/exports/blinded", params=params, headers=bearer(statistician)
        )
        assert blinded.status_code == 200, blinded.text
        assert_jobs_escaped(blinded.text)
        unblinded = api.client.get(
            f"{BASE}/exports/unblinded", params=params | reason, headers=bearer(api.admin_token)
        )
        assert unblinded.status_code == 200, unblinded.text
        assert_jobs_escaped(unblinded.text)
        labels = set(pd.read_csv(io.StringIO(unblinded.text), dtype=str)["arm_label"])
        assert "'" + LABEL in labels and LABEL not in labels
        codebook = api.client.get(
            f"{BASE}/exports/codebook", params=params, headers=bearer(statistician)
        )
        assert codebook.status_code == 200
        assert_codebook_says_so(codebook.text)
        as_json = api.client.get(
            f"{BASE}/exports/codebook", params={"shape": shape}, headers=bearer(statistician)
        ).json()
        assert as_json["csv_text"] == ESCAPING
        assert any(c["label"] == LABEL for c in as_json["columns"])  # JSON: as written
        rows = api.client.get(
            f"{BASE}/exports/blinded",
            params={"shape": shape, "format": "json"},
            headers=bearer(statistician),
        ).json()
        jobs = {v for row in rows for k, v in row.items() if k.endswith("job") and v}
        assert jobs == set(JOBS)  # the JSON export keeps the raw text

    package = api.client.get(f"{BASE}/exports/package", headers=bearer(statistician))
    assert package.status_code == 200
    assert_package_safe(zipfile.ZipFile(io.BytesIO(package.content)).read)


def assert_package_safe(read) -> None:  # type: ignore[no-untyped-def]
    """The data package's CSVs are safe; its descriptor says how text was escaped."""
    assert json.loads(read("datapackage.json"))["description"] == ESCAPING
    for shape in ("long", "wide"):
        assert_jobs_escaped(read(f"blinded_{shape}.csv").decode())
        assert_codebook_says_so(read(f"codebook_{shape}.csv").decode())


def test_the_cli_export_is_spreadsheet_safe(settings, api, tmp_path):
    load_csv_study(api)
    out = tmp_path / "package"
    done = trialdesk(settings, "export", "--study", STUDY, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert_package_safe(lambda name: (out / name).read_bytes())
    for table in ("blinded_long", "blinded_wide", "participants"):
        for ext in ("csv", "dta", "sav"):
            assert (out / f"{table}.{ext}").stat().st_size > 0
    assert "read_trialdesk" in (out / f"{STUDY}.R").read_text()
