"""Study definitions are validated completely before anything is stored."""

from __future__ import annotations

import copy

import pytest

from app.demo import demo_definition
from app.errors import InvalidStudyDefinition
from app.studies.validation import parse_definition
from tests.helpers import bearer


def _problems(document) -> dict[tuple, str]:
    with pytest.raises(InvalidStudyDefinition) as caught:
        parse_definition(document)
    return {p.loc: p.msg for p in caught.value.problems}


def test_the_demo_definition_is_valid_and_mirrors_the_published_design():
    d = parse_definition(demo_definition())
    assert [a.code for a in d.arms] == ["listserv", "bulletin_board", "control"]
    assert {a.ratio for a in d.arms} == {1}
    assert d.randomization.block_sizes == [3, 6]
    assert d.randomization.stratify_by_site
    assert d.randomization.strata[0].levels == ["schizophrenia_spectrum", "bipolar", "depressive"]
    assert [t.code for t in d.schedule] == ["baseline", "month_4", "month_12"]
    assert {i.code for i in d.instruments} == {"who5", "phq9", "group_experience"}
    group = next(i for i in d.instruments if i.code == "group_experience")
    assert group.arms == ["listserv", "bulletin_board"]
    assert len(next(i for i in d.instruments if i.code == "phq9").items) == 9


def test_block_sizes_must_be_multiples_of_the_ratio_sum():
    document = demo_definition()
    document["arms"][0]["ratio"] = 2  # ratio sum 4
    problems = _problems(document)
    assert ("randomization", "block_sizes", 0) in problems
    assert ("randomization", "block_sizes", 1) in problems
    assert "multiple" in problems[("randomization", "block_sizes", 0)]


def test_every_rule_broken_is_reported_with_its_path():
    document = demo_definition()
    document["arms"].append({"code": "control", "label": "Again"})
    document["schedule"][1]["instruments"].append("sf36")
    document["randomization"]["requires_completed"] = ["month_4", "month_99"]
    document["blinding"]["arm_visible_to"].append("statistician")
    statistician_at = len(document["blinding"]["arm_visible_to"]) - 1
    document["instruments"][0]["items"][1]["code"] = "who5_1"
    document["alerts"][0]["item"] = "phq9_99"
    problems = _problems(document)
    assert set(problems) >= {
        ("arms", 3),
        ("schedule", 1, "instruments", 3),
        ("randomization", "requires_completed", 0),
        ("randomization", "requires_completed", 1),
        ("blinding", "arm_visible_to", statistician_at),
        ("instruments", 0, "items", 1, "code"),
        ("alerts", 0, "item"),
    }
    assert "anchored to randomization" in problems[("randomization", "requires_completed", 0)]


def test_shape_errors_name_their_path_and_unknown_fields_are_refused():
    document = demo_definition()
    document["arms"][1]["ratio"] = 0
    document["randomization"]["block_size"] = [3]
    del document["consent_versions"]
    document["instruments"][0]["items"][0]["type"] = "slider"
    problems = _problems(document)
    assert ("arms", 1, "ratio") in problems
    assert ("randomization", "block_size") in problems
    assert ("consent_versions",) in problems
    assert ("instruments", 0, "items", 0, "type") in problems


def test_choice_items_need_coded_options_and_scores_need_numeric_items():
    document = demo_definition()
    who5 = document["instruments"][0]
    del who5["items"][0]["options"]
    who5["scores"][0]["items"].append("missing_item")
    gx = document["instruments"][2]
    gx["scores"][0]["items"].append("gx_comments")
    problems = _problems(document)
    assert ("instruments", 0, "items", 0, "options") in problems
    assert ("instruments", 0, "scores", 0, "items", 5) in problems
    assert ("instruments", 2, "scores", 0, "items", 2) in problems


def test_an_invalid_definition_posted_to_the_api_is_422_and_stores_nothing(api):
    document = copy.deepcopy(demo_definition()) | {"slug": "broken"}
    document["randomization"]["block_sizes"] = [4]
    response = api.client.post("/api/v1/studies", json=document, headers=bearer(api.admin_token))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "randomization", "block_sizes", 0]
    assert (
        api.client.get("/api/v1/studies/broken", headers=bearer(api.admin_token)).status_code == 404
    )


def test_activation_publishes_the_commitment_in_the_record_and_the_trail(api):
    admin = bearer(api.admin_token)
    document = demo_definition() | {"slug": "second-trial"}
    assert api.client.post("/api/v1/studies", json=document, headers=admin).status_code == 201
    activated = api.client.post("/api/v1/studies/second-trial/activate", headers=admin)
    assert activated.status_code == 200
    commitment = activated.json()["commitment"]
    assert activated.json()["status"] == "enrolling" and len(commitment) == 64
    assert (
        api.client.get("/api/v1/studies/second-trial", headers=admin).json()["commitment"]
        == commitment
    )
    trail = api.client.get("/api/v1/studies/second-trial/audit", headers=admin).json()["items"]
    assert [r["action"] for r in trail] == ["study.created", "study.activated"]
    assert trail[1]["changes"]["commitment"]["new"] == commitment
    again = api.client.post("/api/v1/studies/second-trial/activate", headers=admin)
    assert again.status_code == 409


def test_names_the_exports_use_are_reserved_and_wide_columns_never_meet():
    document = demo_definition()
    document["instruments"][0]["items"][0]["code"] = "position"  # an unblinded column
    document["randomization"]["strata"][0]["code"] = "status"
    document["instruments"].append(
        {
            "code": "extra",
            "title": "Extra",
            "items": [{"code": "who5_status", "text": "?", "type": "integer"}],
        }
    )
    document["schedule"][1]["instruments"].append("extra")  # month_4_who5_status...
    document["schedule"].append(  # ...and the status column of a timepoint month_4_who5
        {"code": "month_4_who5", "anchor": "randomization", "day": 30, "close_after": 7,
         "instruments": ["phq9"]}
    )  # fmt: skip
    problems = _problems(document)
    assert "position" in problems[("instruments", 0, "items", 0, "code")]
    assert ("randomization", "strata", 0, "code") in problems
    wide = [m for loc, m in problems.items() if loc[0] == "schedule" and "wide" in m]
    assert wide and "'month_4_who5_status'" in wide[0]
