"""Stata and SPSS files, the participant file, the new time columns, the R script and the
dated file names: each read back as a statistician would, and held to the codebook."""

from __future__ import annotations

import csv
import io
import math
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyreadstat
import pytest
import sqlalchemy as sa

from app.exports.names import file_name
from app.participants.models import Participant
from app.studies.models import Study
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date
from tests.exports import test_api
from tests.exports.test_api import PEOPLE, STUDY, _get

# The trial of tests/exports/test_api.py, built once for this module and backend.
api, db, trial = test_api.api, test_api.db, test_api.trial

ZONE = ZoneInfo("America/New_York")  # the demo study's
INTERVIEW_DAYS_BEFORE = 5


def _today() -> str:
    return local_date(datetime.now(UTC), ZONE).isoformat()


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def edited(api, db, trial):
    """The trial, with what other branches' endpoints will record set in the database: the
    first participant's baseline entered by staff in an interview five days before the
    randomization, with its first WHO-5 item left blank (skipped); the second randomized
    three days before the others; the last one withdrawn from follow-up. Once per module
    (as `trial`); the test that withdraws two participants' data comes last."""
    with db.begin() as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        people = {
            p.code: p
            for p in session.scalars(sa.select(Participant).where(Participant.study_id == study.id))
        }
        first, second, last = trial[0]["code"], trial[1]["code"], trial[-1]["code"]
        randomized_on = local_date(people[first].randomized_at, ZONE)
        baseline = session.scalars(
            sa.select(SurveyInstance).where(
                SurveyInstance.participant_id == people[first].id,
                SurveyInstance.timepoint == "baseline",
            )
        ).one()
        baseline.mode = "staff"
        baseline.interviewed_on = randomized_on - timedelta(days=INTERVIEW_DAYS_BEFORE)
        baseline.answers = {k: v for k, v in baseline.answers.items() if k != "who5_1"}
        people[second].randomized_at -= timedelta(days=3)
        people[last].withdrawal_kind = "follow_up"
        people[last].withdrawal_category = "moved"
        people[last].withdrawn_on = local_date(people[last].randomized_at, ZONE) + timedelta(2)
    return trial


def test_the_long_export_has_planned_day_mode_and_days_from_the_interview(api, edited):
    statistician = api.user("statistician")
    rows = _csv(_get(api, "/exports/blinded", statistician).text)
    assert {(r["timepoint"], r["planned_day"]) for r in rows} == {
        ("baseline", "0"),
        ("month_4", "0"),  # the trial moves month 4 to the day of randomization
        ("month_12", "365"),
    }
    baselines = [r for r in rows if r["timepoint"] == "baseline"]
    staff = [r for r in baselines if r["mode"] == "staff"]
    assert len(staff) == 1
    assert staff[0]["days_from_randomization"] == str(-INTERVIEW_DAYS_BEFORE)
    assert staff[0]["who5_1"] == "" and staff[0]["status"] == "completed"  # skipped
    assert {r["mode"] for r in baselines} == {"self", "staff"}
    later = [r for r in rows if r["timepoint"] == "month_12"]
    assert {(r["status"], r["mode"], r["days_from_randomization"]) for r in later} == {
        ("scheduled", "", ""),
        ("cancelled", "", ""),  # the one who left
    }
    wide = _csv(_get(api, "/exports/blinded", statistician, shape="wide").text)
    assert {r["month_12_planned_day"] for r in wide} == {"365"}
    assert sorted(r["baseline_mode"] for r in wide) == ["self"] * (PEOPLE - 1) + ["staff"]


def test_the_participant_file_has_one_row_each_with_status_and_study_days(api, edited):
    statistician = api.user("statistician")
    got = _get(api, "/exports/participants", statistician)
    assert got.status_code == 200, got.text
    rows = _csv(got.text)
    assert len(rows) == PEOPLE
    assert list(rows[0]) == [
        "pseudonym",
        "group",
        "site",
        "diagnosis",
        "status",
        "source",
        "randomized_day",
        "withdrawal_kind",
        "withdrawal_category",
        "withdrawn_day",
        "intervention_stopped_day",
    ]
    assert sorted(r["randomized_day"] for r in rows) == ["0"] + ["3"] * (PEOPLE - 1)
    assert {r["source"] for r in rows} == {"staff"}  # enrolled by staff (join: tests/join_reports)
    [left] = [r for r in rows if r["status"] == "withdrawn"]
    assert (left["withdrawal_kind"], left["withdrawal_category"]) == ("follow_up", "moved")
    assert left["withdrawn_day"] == "2"
    assert {r["group"] for r in rows} == {"G1", "G2", "G3"}
    as_json = _get(api, "/exports/participants", statistician, format="json").json()
    assert [r["pseudonym"] for r in as_json] == [r["pseudonym"] for r in rows]
    assert _get(api, "/exports/participants", api.user("coordinator", "PHL")).status_code == 403
    assert _get(api, "/exports/participants", statistician, format="xls").status_code == 422


def _codebook(api, token: str, shape: str) -> list[dict[str, Any]]:
    if shape == "participants":
        package = _get(api, "/exports/package", token)
        with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
            book = _csv(archive.read("codebook_participants.csv").decode())
        for entry in book:
            pairs = [v.split("=", 1) for v in entry["values"].split("; ") if v]
            entry["values"] = [{"value": v, "label": label} for v, label in pairs] or None
        return book
    return _get(api, "/exports/codebook", token, shape=shape).json()["columns"]


def _read(content: bytes, fmt: str, tmp_path: Path) -> tuple[pd.DataFrame, Any]:
    path = tmp_path / f"file.{fmt}"
    path.write_bytes(content)
    reader = pyreadstat.read_dta if fmt == "dta" else pyreadstat.read_sav
    return reader(str(path), user_missing=True)


@pytest.mark.parametrize("fmt", ["dta", "sav"])
@pytest.mark.parametrize("shape", ["long", "wide", "participants"])
def test_stata_and_spss_files_carry_the_codebooks_names_labels_and_types(
    api, edited, tmp_path, fmt, shape
):
    statistician = api.user("statistician")
    path = "/exports/participants" if shape == "participants" else "/exports/blinded"
    params = {"format": fmt} | ({} if shape == "participants" else {"shape": shape})
    got = _get(api, path, statistician, **params)
    assert got.status_code == 200, got.text
    kind = "participants" if shape == "participants" else shape
    expected = f'attachment; filename="{STUDY}-blinded-{kind}-{_today()}.{fmt}"'
    assert got.headers["content-disposition"] == expected
    frame, meta = _read(got.content, fmt, tmp_path)
    book = _codebook(api, statistician, shape)
    assert len(frame) == (PEOPLE * 3 if shape == "long" else PEOPLE)
    names = [c["file_name"] for c in book]
    assert meta.column_names == names
    assert all(len(n) <= 28 and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) for n in names)
    limit = 80 if fmt == "dta" else 256
    for entry, name in zip(book, names, strict=True):
        label = meta.column_names_to_labels[name]
        if len(entry["label"]) <= limit:
            assert label == entry["label"], name
        else:
            assert label.endswith("...") and entry["label"].startswith(label[:-3]), name
        values = entry["values"]
        if entry["type"] in ("integer", "number"):
            assert meta.readstat_variable_types[name] == "double", name
            if values:  # integer-coded choices keep their codes, labelled
                assert meta.variable_value_labels[name] == {
                    float(v["value"]): v["label"] for v in values
                }
        elif values and entry["name"] != "supports" and not entry["name"].endswith("supports"):
            # Text codes of a closed list: 1..k in the codebook's order, labelled.
            assert meta.variable_value_labels[name] == {
                float(n): v["label"][:120] for n, v in enumerate(values, start=1)
            }, name
        else:
            assert meta.readstat_variable_types[name] == "string", name
    if shape == "long":
        _check_missing_codes(frame, meta, fmt, names)


def _check_missing_codes(frame: pd.DataFrame, meta: Any, fmt: str, names: list[str]) -> None:
    """`who5_1`: skipped on the staff-entered baseline, not given at month 12."""
    status = {v: k for k, v in meta.variable_value_labels["status"].items()}
    completed, scheduled = status["Completed"], status["Scheduled (window not open yet)"]
    skipped = frame[(frame["status"] == completed) & frame["who5_1"].isin([".b", "b", -8.0])]
    given = frame[frame["status"] == scheduled]["who5_1"]
    if fmt == "dta":
        assert meta.missing_user_values["who5_1"] == ["a", "b"]
        assert len(skipped) == 1
        assert set(given) == {"a"}
    else:
        assert {(r["lo"], r["hi"]) for r in meta.missing_ranges["who5_1"]} == {
            (-9.0, -9.0),
            (-8.0, -8.0),
        }
        assert len(skipped) == 1
        assert set(given) == {-9.0}
        # A date item's days may be negative: no code there, system-missing instead.
        assert "diagnosed_on" not in meta.missing_ranges
    answered = frame[frame["status"] == completed]["who5_2"]
    assert all(isinstance(v, float) and not math.isnan(v) for v in answered)


def test_the_unblinded_export_comes_as_stata_with_the_arm_labelled(api, edited, tmp_path):
    got = _get(api, "/exports/unblinded", api.admin_token, format="dta", reason="DSMB review now")
    assert got.status_code == 200, got.text
    assert f"{STUDY}-unblinded-long-{_today()}.dta" in got.headers["content-disposition"]
    _, meta = _read(got.content, "dta", tmp_path)
    assert set(meta.variable_value_labels["arm"].values()) == {
        "Label-Alpha-Listserv",
        "Label-Beta-Board",
        "Label-Gamma-Control",
    }


def test_the_package_holds_stata_spss_and_an_r_script_that_names_every_column(
    api, edited, tmp_path
):
    statistician = api.user("statistician")
    got = _get(api, "/exports/package", statistician)
    assert f"{STUDY}-blinded-package-{_today()}.zip" in got.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        names = set(archive.namelist())
        script = archive.read(f"{STUDY}.R").decode()
        tables = {
            n: next(csv.reader(io.StringIO(archive.read(f"{n}.csv").decode())))
            for n in (
                "blinded_long",
                "blinded_wide",
                "participants",
                "adverse_events",
                "deviations",
            )
        }
        for table in tables:
            for fmt in ("dta", "sav"):
                assert f"{table}.{fmt}" in names
                frame, _ = _read(archive.read(f"{table}.{fmt}"), fmt, tmp_path)
                assert len(frame.columns) == len(tables[table])
    assert script.count("<- read_trialdesk(") == 5  # one call per table
    for table, header in tables.items():
        assert f'{table} <- read_trialdesk(\n  "{table}.csv"' in script
        for column in header:
            assert f'"{column}" = ' in script, (table, column)
    _assert_balanced(script)
    assert "factor(data[[name]], levels = f$levels, labels = f$labels)" in script
    assert '"Entered by staff (interview)"' in script  # mode's label, not its code
    if shutil.which("Rscript"):  # where R is installed, the script runs too
        with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
            archive.extractall(tmp_path / "package")
        check = (
            f'source("{STUDY}.R"); '
            f"stopifnot(nrow(blinded_long) == {PEOPLE * 3}, nrow(participants) == {PEOPLE}, "
            "is.factor(blinded_long$mode), is.integer(blinded_long$days_from_randomization), "
            'attr(blinded_long$who5_1, "label") != "", '
            'sum(blinded_long$mode == "Entered by staff (interview)", na.rm = TRUE) == 1); '
            'cat("ok")'
        )
        ran = subprocess.run(
            ["Rscript", "-e", check],
            cwd=tmp_path / "package",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0 and ran.stdout.endswith("ok"), ran.stderr


def _assert_balanced(script: str) -> None:
    """Brackets and quotes of the R script pair up (there is no R on the test machine)."""
    depth = {"(": 0, "{": 0}
    closing = {")": "(", "}": "{"}
    in_string = False
    escaped = False
    for char in script:
        if in_string:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0
    assert not in_string and depth == {"(": 0, "{": 0}


def test_variable_names_fit_stata_and_spss():
    assert file_name("who5_1") == "who5_1"
    assert file_name("in") == "in_v" and file_name("str12") == "str12_v"
    long = file_name("month_12_" + "x" * 60)
    assert len(long) == 28 and long.startswith("month_12_xxx")
    assert long != file_name("month_12_" + "x" * 61)


def test_every_download_is_named_with_the_study_and_todays_date(api, edited):
    statistician = api.user("statistician")
    today = _today()
    for path, params, name in [
        ("/exports/blinded", {"shape": "wide", "format": "json"}, "blinded-wide"),
        ("/exports/codebook", {"shape": "wide", "format": "csv"}, "codebook-wide"),
        ("/exports/participants", {"format": "sav"}, "blinded-participants"),
    ]:
        got = _get(api, path, statistician, **params)
        ext = params["format"]
        want = f'attachment; filename="{STUDY}-{name}-{today}.{ext}"'
        assert got.headers["content-disposition"] == want


def test_answers_given_on_or_after_a_withdrawal_of_consent_to_data_are_withheld(
    api, db, edited, tmp_path
):
    """SPEC 8: after a withdrawal of consent to the use of their data nothing answered on
    or after that date is exported; what was answered before stays."""
    with db.begin() as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        people = {
            p.code: p
            for p in session.scalars(sa.select(Participant).where(Participant.study_id == study.id))
        }
        answered_on = {}
        for person in (edited[1], edited[2]):
            participant = people[person["code"]]
            baseline = session.scalars(
                sa.select(SurveyInstance).where(
                    SurveyInstance.participant_id == participant.id,
                    SurveyInstance.timepoint == "baseline",
                )
            ).one()
            answered_on[participant.code] = local_date(baseline.completed_at, ZONE)
            participant.withdrawal_kind = "data"
            participant.withdrawal_category = "no_longer_interested"
        withheld, kept = edited[1]["code"], edited[2]["code"]
        people[withheld].withdrawn_on = answered_on[withheld]  # the same day: withheld
        people[kept].withdrawn_on = answered_on[kept] + timedelta(days=1)  # after: kept
    statistician = api.user("statistician")
    rows = _csv(_get(api, "/exports/blinded", statistician).text)
    baselines = [r for r in rows if r["timepoint"] == "baseline"]
    assert [r["status"] for r in baselines].count("withheld") == 1
    [gone] = [r for r in baselines if r["status"] == "withheld"]
    assert all(gone[c] == "" for c in gone if c.startswith(("who5_", "phq9_")))
    assert (gone["mode"], gone["days_from_randomization"]) == ("", "")
    completed = [r for r in baselines if r["status"] == "completed"]
    assert len(completed) == PEOPLE - 1  # the one whose withdrawal came after kept theirs
    assert all(r["phq9_total"] != "" for r in completed)
    book = _get(api, "/exports/codebook", statistician, shape="long").json()["columns"]
    [status] = [c for c in book if c["name"] == "status"]
    assert "withheld" in {v["value"] for v in status["values"]}
    _, meta = _read(
        _get(api, "/exports/participants", statistician, format="dta").content, "dta", tmp_path
    )
    labels = meta.variable_value_labels["withdrawal_category"]
    assert "No longer interested" in labels.values()


def test_no_title_breaks_out_of_the_r_scripts_comment():
    from app.exports.rscript import script

    title = "Peer support\r\nstop('x')\u2028q()\x0bsystem('rm')\x85end"
    text = script("peer-support", title, [])
    first = text.splitlines()[0]
    assert first.startswith("# Peer support stop('x') q() system('rm') end:")
    assert all(
        line.startswith("#") or not line.strip() or not line.startswith(("stop", "q(", "system"))
        for line in text.splitlines()
    )
    assert sum("stop('x')" in line for line in text.splitlines()) == 1
