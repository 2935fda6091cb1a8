"""Exports of remote enrollment: each survey's language (long and wide rows, codebook,
data package, Stata and SPSS labels) and how each participant was screened (`source`)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import pyreadstat
import sqlalchemy as sa

from app.demo import demo_definition
from app.exports import formats
from app.exports.dataset import ParticipantRecord, Shape, SurveyRecord, columns, rows
from app.participants.models import Participant
from app.studies.definition import StudyDefinition
from app.surveys.models import SurveyInstance
from tests.helpers import STUDY, bearer

BASE = f"/api/v1/studies/{STUDY}"


def _bilingual() -> StudyDefinition:
    # The languages alone: translations are the definition rules' business, not the export's.
    return StudyDefinition.model_validate(demo_definition()).model_copy(
        update={"languages": ["en", "es"]}
    )


def test_each_survey_row_says_the_language_it_was_answered_in():
    definition = _bilingual()
    done = SurveyRecord("completed", date(2026, 1, 5), {"who5_1": 3}, {}, "self", None, "es")
    # A survey saved in Spanish but not completed: no language is said, as no mode.
    open_ = SurveyRecord("open", None, {"who5_1": 2}, {}, None, None, "es")
    record = ParticipantRecord(
        "PABCDEFGH", "G1", "PHL", {"diagnosis": "bipolar"}, date(2026, 1, 1), {}
    )
    record = ParticipantRecord(
        **{**record.__dict__, "surveys": {"baseline": done, "month_4": open_}}
    )
    long = columns(definition, shape=Shape.long, unblinded=False)
    names = [c.name for c in long]
    assert names.index("language") == names.index("mode") + 1
    by_timepoint = {
        row[names.index("timepoint")]: row[names.index("language")]
        for row in rows(record, long, definition, Shape.long)
    }
    assert by_timepoint["baseline"] == "es"
    assert by_timepoint["month_4"] is None
    [language] = [c for c in long if c.name == "language"]
    assert language.values == (("en", "English"), ("es", "Spanish (Español)"))
    assert language.describe()["values"][1] == {"value": "es", "label": "Spanish (Español)"}
    assert formats.table_schema(long)["fields"][names.index("language")]["constraints"] == {
        "enum": ["en", "es"]
    }
    wide = columns(definition, shape=Shape.wide, unblinded=False)
    [row] = rows(record, wide, definition, Shape.wide)
    values = dict(zip([c.name for c in wide], row, strict=True))
    assert (values["baseline_language"], values["month_4_language"]) == ("es", None)


def test_the_exports_carry_the_language_and_the_participant_file_the_source(api, db, tmp_path):
    admin = api.admin_token
    staff, online = api.enroll(admin), api.enroll(admin)
    for code in (staff, online):
        assert api.randomize(admin, code).status_code == 200
    with db.engine.begin() as connection:  # as the join flow and the survey pages record
        connection.execute(
            sa.update(Participant).where(Participant.code == online).values(source="join")
        )
        connection.execute(
            sa.update(SurveyInstance)
            .where(SurveyInstance.timepoint == "baseline", SurveyInstance.completed_at.is_not(None))
            .values(language="en")
        )
    statistician = api.user("statistician")

    def get(path: str, **params: str) -> bytes:
        got = api.client.get(f"{BASE}/exports/{path}", params=params, headers=bearer(statistician))
        assert got.status_code == 200, got.text
        return got.content

    long = list(csv.DictReader(io.StringIO(get("blinded", format="csv", shape="long").decode())))
    # Completed at baseline only: the later surveys say no language.
    assert {(r["timepoint"] == "baseline", r["language"]) for r in long} == {
        (True, "en"),
        (False, ""),
    }
    wide = list(csv.DictReader(io.StringIO(get("blinded", format="csv", shape="wide").decode())))
    assert [r["baseline_language"] for r in wide] == ["en", "en"]
    book = json.loads(get("codebook", format="json"))
    entries = book["columns"] if isinstance(book, dict) else book
    [entry] = [c for c in entries if c["name"] == "language"]
    # The demo study lists English and Spanish: each is a value, whether used or not.
    assert entry["values"] == [
        {"value": "en", "label": "English"},
        {"value": "es", "label": "Spanish (Español)"},
    ]
    with zipfile.ZipFile(io.BytesIO(get("package"))) as archive:
        package = json.loads(archive.read("datapackage.json"))
    fields = {
        (r["name"], f["name"]): f for r in package["resources"] for f in r["schema"]["fields"]
    }
    language = next(f for (_, name), f in fields.items() if name == "language")
    assert language["constraints"] == {"enum": ["en", "es"]}
    sources = next(f for (_, name), f in fields.items() if name == "source")
    assert sources["constraints"] == {"enum": ["staff", "join"]}
    path = Path(tmp_path) / "long.dta"
    path.write_bytes(get("blinded", format="dta", shape="long"))
    frame, meta = pyreadstat.read_dta(str(path), apply_value_formats=True)
    assert meta.variable_value_labels["language"] == {1.0: "English", 2.0: "Spanish (Español)"}
    assert list(frame["language"]).count("English") == 2  # the two baselines
    participants = list(csv.DictReader(io.StringIO(get("participants", format="csv").decode())))
    assert sorted(r["source"] for r in participants) == ["join", "staff"]
    path = Path(tmp_path) / "participants.sav"
    path.write_bytes(get("participants", format="sav"))
    _, meta = pyreadstat.read_sav(str(path))
    assert set(meta.variable_value_labels["source"].values()) == {
        "Screened and consented by staff",
        "Screened themselves and consented online (public link)",
    }
