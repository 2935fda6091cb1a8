"""Adverse events and protocol deviations in the exports: columns and codebook, what the
blinded tables leave out, days from randomization, and the unblinded tables."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
import sqlalchemy as sa

from app.demo import demo_definition
from app.exports.safety_tables import SafetyTable, columns, days_from, precision
from app.safety import labels
from app.safety.deviation_rules import DeviationCategory
from app.safety.events import (
    SERIOUSNESS_CRITERIA,
    ActionTaken,
    Outcome,
    Relatedness,
    Severity,
    VersionKind,
)
from app.studies.definition import StudyDefinition
from tests.exports import test_api
from tests.exports.safety_seed import AE_NOTE, AE_TERM, PD_ACTION, PD_TEXT, facts
from tests.exports.test_api import STUDY, _get

# The trial of tests/exports/test_api.py, built once for this module and backend.
api, db, trial = test_api.api, test_api.db, test_api.trial

ARM_REVEALING = {
    "AEREL",
    "AERELPROC",
    "AEACN",
    "reviewed",
    "reviewed_AEREL",
    "reviewed_AERELPROC",
    "reviewed_AEEXPECT",
    "versions",
    "arm",
    "arm_label",
}
FREE_TEXT = {"AETERM", "note", "description", "corrective_action"}


def test_partial_dates_give_no_day_and_say_how_much_is_known():
    day0 = date(2026, 3, 10)
    assert (precision("2026-03-14"), days_from("2026-03-14", day0)) == ("day", 4)
    assert (precision("2026-03-01"), days_from("2026-03-01", day0)) == ("day", -9)
    assert (precision("2026-03"), days_from("2026-03", day0)) == ("month", None)
    assert (precision("2026"), days_from("2026", day0)) == ("year", None)
    assert (precision(None), precision("2026-13"), precision("2026-02-30")) == (None,) * 3
    assert days_from("2026-03-14", None) is None  # not randomized: no day 0


@pytest.mark.parametrize("table", list(SafetyTable))
def test_the_blinded_tables_are_an_allow_list_without_arm_revealing_fields_or_free_text(table):
    definition = StudyDefinition.model_validate(demo_definition())
    blinded = [c.name for c in columns(definition, table, unblinded=False)]
    unblinded = [c.name for c in columns(definition, table, unblinded=True)]
    assert not ARM_REVEALING & set(blinded)
    assert not FREE_TEXT & set(blinded) and not FREE_TEXT & set(unblinded)
    assert unblinded[: len(blinded)] == blinded  # the unblinded adds, never changes
    if table is SafetyTable.adverse_events:
        assert set(unblinded) >= ARM_REVEALING
        # The preferred term is typed (free text in effect): the unblinded table only.
        assert "AEDECOD" not in blinded and "AEDECOD" in unblinded
    assert {"arm", "arm_label"} <= set(unblinded)


def test_coded_columns_list_every_fixed_code_with_a_label():
    for words, codes in [
        (labels.SEVERITY, Severity),
        (labels.RELATEDNESS, Relatedness),
        (labels.OUTCOME, Outcome),
        (labels.ACTION, ActionTaken),
        (labels.VERSION_KIND, VersionKind),
        (labels.DEVIATION_CATEGORY, DeviationCategory),
    ]:
        assert list(words) == [c.value for c in codes]
        assert all(words.values()) and len(set(words.values())) == len(words)
    assert tuple(labels.CRITERIA) == SERIOUSNESS_CRITERIA
    assert len(set(labels.ORGAN_CLASSES)) == 27
    assert labels.organ_class("  product   ISSUES ") == "Product issues"
    assert labels.organ_class("Psychiatric") is None


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_safety_tables_blinded_and_unblinded_through_the_api_and_sealed_at_rest(api, db, trial):
    seeded = facts(db, STUDY, [p["code"] for p in trial])
    statistician = api.user("statistician")
    arms = {p["code"]: p["arm"] for p in trial}

    # Blinded events: the allow-list, the codebook alike, days counted right.
    got = _get(api, "/exports/blinded", statistician, table="adverse_events")
    assert got.status_code == 200, got.text
    assert "blinded-adverse_events" in got.headers["content-disposition"]
    header = next(csv.reader(io.StringIO(got.text)))
    assert not ARM_REVEALING & set(header) and not FREE_TEXT & set(header)
    book = _get(api, "/exports/codebook", statistician, table="adverse_events").json()
    assert [c["name"] for c in book["columns"]] == header and book["table"] == "adverse_events"
    entries = {c["name"]: c for c in book["columns"]}
    assert {v["value"] for v in entries["AESEV"]["values"]} == {"mild", "moderate", "severe"}
    book_csv = _rows(
        _get(api, "/exports/codebook", statistician, table="deviations", format="csv").text
    )
    assert "wrong_arm=Wrong arm delivered" in {r["name"]: r for r in book_csv}["category"]["values"]
    events = {int(r["event_number"]): r for r in _rows(got.text)}
    serious, mild = events[1], events[2]
    assert (serious["onset_day"], serious["onset_precision"]) == ("3", "day")
    assert (serious["end_day"], serious["end_precision"]) == ("", "month")
    assert serious["aware_day"] == "4"
    assert (serious["AESER"], serious["AESHOSP"], serious["AESDTH"]) == ("true", "true", "")
    # The follow-up's outcome over the initial one; the reporter's expectedness, not the
    # review's (made by someone who sees the arms).
    assert (serious["AEOUT"], serious["AEEXPECT"], serious["closed"]) == (
        "recovered",
        "true",
        "true",
    )
    assert (mild["onset_day"], mild["onset_precision"], mild["aware_day"]) == ("", "year", "-2")
    assert mild["closed"] == "false"
    assert serious["AEBODSYS"] == "Injury, poisoning and procedural complications"
    for text in (AE_TERM, AE_NOTE, "possible", "probable", "intervention_interrupted"):
        assert text not in got.text, text
    assert "Intentional overdose" not in got.text  # AEDECOD: the unblinded table's only

    # Blinded deviations: confirmed only, and not the one about an arm-only survey.
    deviations = _rows(_get(api, "/exports/blinded", statistician, table="deviations").text)
    numbers = {int(r["deviation_number"]) for r in deviations}
    assert numbers == {1, seeded.shown_deviation}
    first = next(r for r in deviations if r["deviation_number"] == "1")
    assert (first["category"], first["occurred_day"], first["important"]) == (
        "wrong_arm",
        "1",
        "true",
    )
    assert first["proposed_by_system"] == "false"

    # Unblinded: every field, the review beside the report, and the arm; a reason needed.
    admin = api.admin_token
    refused = _get(api, "/exports/unblinded", admin, table="adverse_events")
    assert refused.status_code == 422
    reason = "DSMB closed session"
    full = _rows(_get(api, "/exports/unblinded", admin, table="adverse_events", reason=reason).text)
    serious = next(r for r in full if r["event_number"] == "1")
    assert (serious["AEREL"], serious["reviewed_AEREL"]) == ("possible", "probable")
    assert (serious["AERELPROC"], serious["reviewed_AERELPROC"]) == ("unlikely", "not_related")
    assert (serious["AEACN"], serious["reviewed_AEEXPECT"], serious["versions"]) == (
        "intervention_interrupted",
        "false",
        "4",
    )
    assert serious["arm"] == arms[seeded.serious]
    assert serious["AEDECOD"] == "Intentional overdose"
    assert AE_TERM not in str(full)
    every = _rows(_get(api, "/exports/unblinded", admin, table="deviations", reason=reason).text)
    assert {int(r["deviation_number"]) for r in every} == {1, 4, 5}
    assert PD_TEXT not in str(every) and PD_ACTION not in str(every)
    # A blind role cannot take the unblinded table.
    assert (
        _get(api, "/exports/unblinded", statistician, table="deviations", reason=reason).status_code
        == 403
    )

    # Pseudonyms are the participants file's; the days count from each one's randomization.
    people = _rows(_get(api, "/exports/participants", statistician).text)
    assert {r["pseudonym"] for r in _rows(got.text)} <= {r["pseudonym"] for r in people}

    # What a version says stays sealed at rest.
    with db.session(write=False) as session:
        raw = session.execute(
            sa.text(
                "SELECT fields FROM adverse_event_versions UNION ALL "
                "SELECT fields FROM protocol_deviation_versions"
            )
        ).scalars()
        stored = b"".join(bytes(v) for v in raw)
    assert stored
    for text in (AE_TERM, AE_NOTE, PD_TEXT, "Intentional overdose"):
        assert text.encode() not in stored
