"""The pure rules of exports: pseudonyms, group codes, columns, rows and formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

from app.demo import demo_definition
from app.exports import formats
from app.exports.dataset import (
    DAYS,
    NOT_SCHEDULED,
    ParticipantRecord,
    Shape,
    SurveyRecord,
    columns,
    rows,
)
from app.studies.definition import StudyDefinition
from app.studies.pseudonyms import group_codes, pseudonym

ARMS = ["listserv", "bulletin_board", "control"]


def _definition(**instrument_changes: Any) -> StudyDefinition:
    document = demo_definition()
    document["instruments"].append(
        {
            "code": "extra",
            "title": "Extra",
            "items": [
                {"code": "when", "text": "When?", "type": "date"},
                {"code": "why", "text": "Why?", "type": "text"},
                {"code": "what", "text": "What?", "type": "text", "export": True},
                {
                    "code": "who",
                    "text": "Who?",
                    "type": "multi_choice",
                    "options": [["a", "A"], ["b", "B"]],
                },
                {"code": "ok", "text": "OK?", "type": "boolean"},
            ],
        }
    )
    document["schedule"][0]["instruments"].append("extra")
    for instrument in document["instruments"]:
        if instrument["code"] == "group_experience":
            instrument.update(instrument_changes)
    return StudyDefinition.model_validate(document)


def test_a_pseudonym_is_stable_per_key_and_tells_nothing_of_the_code():
    key = bytes(range(32))
    assert pseudonym(key, "PS-PHL-0001") == pseudonym(key, "PS-PHL-0001")
    assert pseudonym(key, "PS-PHL-0001") != pseudonym(key, "PS-PHL-0002")
    assert pseudonym(key, "PS-PHL-0001") != pseudonym(bytes(32), "PS-PHL-0001")
    made = pseudonym(key, "PS-PHL-0001")
    assert len(made) == 13 and made.startswith("P") and "PHL" not in made


def test_group_codes_deal_every_arm_one_code_in_an_order_only_the_key_knows():
    orders = set()
    for n in range(12):
        codes = group_codes(bytes([n]) * 32, ARMS)
        assert sorted(codes) == sorted(ARMS)
        assert sorted(codes.values()) == ["G1", "G2", "G3"]
        assert codes == group_codes(bytes([n]) * 32, ARMS)  # reproducible
        orders.add(tuple(codes[a] for a in ARMS))
    assert len(orders) > 1  # the definition's order does not decide the codes


def test_columns_leave_out_free_text_and_arm_limited_instruments_unless_released():
    names = [c.name for c in columns(_definition(), shape=Shape.long, unblinded=False)]
    assert "why" not in names and "what" in names
    assert not [n for n in names if n.startswith("gx_")]
    assert not {"arm", "arm_label", "stratum", "block"} & set(names)
    released = _definition(released_in_blinded_export=True)
    assert "gx_helpful" in [c.name for c in columns(released, shape=Shape.long, unblinded=False)]
    unblinded = [c.name for c in columns(_definition(), shape=Shape.long, unblinded=True)]
    assert unblinded[-6:] == ["arm", "arm_label", "stratum", "block", "block_size", "position"]


def test_wide_columns_are_prefixed_by_their_timepoint_and_only_where_asked():
    names = [c.name for c in columns(_definition(), shape=Shape.wide, unblinded=False)]
    assert "baseline_who5_1" in names and "month_4_who5_1" in names
    assert "baseline_when" in names and "month_4_when" not in names  # baseline only
    assert "timepoint" not in names and len(names) == len(set(names))


def test_a_date_answer_becomes_days_from_randomization_and_a_missing_survey_a_status():
    definition = _definition()
    cols = columns(definition, shape=Shape.long, unblinded=False)
    when = next(c for c in cols if c.name == "when")
    assert (when.type, when.unit) == ("integer", DAYS)
    record = ParticipantRecord(
        pseudonym="PX",
        group="G2",
        site="PHL",
        strata={"diagnosis": "bipolar"},
        randomized_on=date(2026, 3, 1),
        surveys={
            "baseline": SurveyRecord(
                status="completed",
                completed_on=date(2026, 2, 27),
                answers={"when": "2026-01-30", "who": ["a", "b"], "ok": False, "who5_1": 3},
                scores={"who5_raw": 12.0},
            )
        },
    )
    out = [
        dict(zip([c.name for c in cols], r, strict=True))
        for r in rows(record, cols, definition, Shape.long)
    ]
    assert [r["timepoint"] for r in out] == ["baseline", "month_4", "month_12"]
    baseline, month_4 = out[0], out[1]
    assert baseline["days_from_randomization"] == -2
    assert (baseline["when"], baseline["who"], baseline["ok"]) == (-30, "a;b", False)
    assert baseline["who5_raw"] == 12.0 and baseline["group"] == "G2"
    assert month_4["status"] == NOT_SCHEDULED and month_4["who5_1"] is None


def test_csv_and_json_chunks_carry_the_same_rows_whatever_the_chunk_size():
    cols = columns(_definition(), shape=Shape.wide, unblinded=False)
    width = len(cols)
    data = [[f"P{n}"] + [None, True, 2.5] + [n] * (width - 4) for n in range(3000)]
    text_chunks = list(formats.csv_chunks(cols, data))
    assert len(text_chunks) > 2  # streamed, not one string
    parsed = list(csv.reader(io.StringIO("".join(text_chunks))))
    assert parsed[0] == [c.name for c in cols]
    assert parsed[1][:4] == ["P0", "", "true", "2.5"] and len(parsed) == 3001
    as_json = json.loads("".join(formats.json_chunks(cols, data)))
    assert as_json[0]["pseudonym"] == "P0" and as_json[0][cols[1].name] is None
    assert len(as_json) == 3000
    assert json.loads("".join(formats.json_chunks(cols, []))) == []


def test_the_table_schema_has_every_column_with_enums_for_closed_values_only():
    cols = columns(_definition(), shape=Shape.long, unblinded=False)
    schema = formats.table_schema(cols, shape=Shape.long)
    fields = {f["name"]: f for f in schema["fields"]}
    assert list(fields) == [c.name for c in cols]
    assert fields["who5_1"]["constraints"]["enum"] == [5, 4, 3, 2, 1, 0]
    assert "constraints" not in fields["who"]  # multi_choice: a joined string
    assert fields["ok"]["trueValues"] == ["true"]
    assert schema["primaryKey"] == ["pseudonym", "timepoint"]
    assert schema["missingValues"] == [""]


def test_the_fast_row_maker_gives_what_every_columns_getter_gives():
    definition = _definition(released_in_blinded_export=True)
    record = ParticipantRecord(
        pseudonym="PY",
        group="G1",
        site="PIT",
        strata={"diagnosis": "depressive"},
        randomized_on=date(2026, 1, 10),
        surveys={
            "baseline": SurveyRecord(
                "completed",
                date(2026, 1, 9),
                {"when": "2025-12-31", "who": ["b"], "what": "x", "who5_2": 1},
                {"who5_raw": 3.0},
            ),
            "month_4": SurveyRecord("open", None, {"gx_helpful": 2, "gx_supported": True}, {}),
        },
    )
    for shape in Shape:
        for unblinded in (False, True):
            cols = columns(definition, shape=shape, unblinded=unblinded)
            timepoints = [t.code for t in definition.schedule] if shape is Shape.long else [None]
            slow = [[c.get(record, tp) for c in cols] for tp in timepoints]
            assert list(rows(record, cols, definition, shape)) == slow


def test_days_from_randomization_count_from_the_interview_when_staff_entered_it():
    definition = _definition()
    cols = columns(definition, shape=Shape.long, unblinded=False)
    survey = SurveyRecord(
        "completed",
        date(2027, 1, 10),
        {},
        {},
        mode="staff",
        interviewed_on=date(2027, 1, 2),
    )
    record = ParticipantRecord(
        "P1", "G1", "PHL", {}, date(2027, 1, 5), {"baseline": survey, "month_4": survey}
    )
    names = [c.name for c in cols]
    first = next(iter(rows(record, cols, definition, Shape.long)))
    row = dict(zip(names, first, strict=True))
    assert (row["timepoint"], row["planned_day"], row["mode"]) == ("baseline", 0, "staff")
    assert row["days_from_randomization"] == -3  # the interview, before randomization
    by_self = SurveyRecord("completed", date(2027, 1, 10), {}, {}, mode="self")
    assert by_self.dated_on == date(2027, 1, 10)
    assert SurveyRecord("missed", None, {}, {}, mode="self").dated_on is None


def test_stata_and_spss_files_keep_long_unicode_labels_and_odd_names_within_limits(tmp_path):
    import pyreadstat

    from app.exports import statfiles
    from app.exports.model import Column

    long_label = "Über " + "é" * 300
    cols = [
        Column("in", long_label, "integer", lambda p, _: None),
        Column("x" * 40, "Coded", "string", lambda p, _: None, values=(("a", "A"),), closed=True),
        Column("free", "Text", "string", lambda p, _: None),
    ]
    rows_ = [[1, "a", "=1+1"], [None, "b", None]]
    for fmt in ("dta", "sav"):
        path = tmp_path / f"t.{fmt}"
        statfiles.write(path, cols, rows_, fmt=fmt, label="Study " * 30)
        read = pyreadstat.read_dta if fmt == "dta" else pyreadstat.read_sav
        frame, meta = read(str(path))
        assert meta.column_names[0] == "in_v" and len(meta.column_names[1]) == 28
        label = meta.column_names_to_labels["in_v"]
        assert label.endswith("...") and long_label.startswith(label[:-3])
        assert list(frame["free"]) == ["=1+1", ""]  # a binary file: no formula escaping
        assert frame[meta.column_names[1]].iloc[0] == 1.0  # `a` is 1, labelled "A"
        assert meta.variable_value_labels[meta.column_names[1]] == {1.0: "A"}
