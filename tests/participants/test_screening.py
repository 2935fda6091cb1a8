"""Screening as a pure rule: eligibility, consent and strata give one list of problems."""

from __future__ import annotations

from app.demo import demo_definition
from app.participants.screening import screen
from app.studies.validation import parse_definition

DEMO = parse_definition(demo_definition())
ELIGIBLE = {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True}


def _screen(**overrides):
    given = {
        "answers": ELIGIBLE,
        "consent_version": "1.0",
        "levels": {"diagnosis": "bipolar"},
        "has_contact": True,
    } | overrides
    return screen(DEMO, **given)


def test_a_complete_eligible_screening_has_no_problem():
    outcome = _screen()
    assert outcome.eligible and outcome.problems == [] and outcome.ineligible_reasons == []


def test_a_criterion_not_met_makes_the_person_ineligible_not_invalid():
    outcome = _screen(answers=ELIGIBLE | {"internet_access": False}, consent_version=None)
    assert not outcome.eligible
    assert outcome.ineligible_reasons == ["internet_access"]
    assert outcome.problems == []  # no consent or contact is needed to record an exclusion


def test_every_problem_is_listed_with_its_path():
    outcome = _screen(
        answers={"age_18_plus": True, "shoe_size": True},
        consent_version="9.9",
        levels={"diagnosis": "flu", "colour": "red"},
        has_contact=False,
    )
    paths = {p.loc for p in outcome.problems}
    assert paths == {
        ("screening", "shoe_size"),
        ("screening", "smi_diagnosis"),
        ("screening", "internet_access"),
        ("strata", "diagnosis"),
        ("strata", "colour"),
        ("consent", "version"),
        ("contact",),
    }
    assert any("1.0" in p.msg for p in outcome.problems if p.loc == ("consent", "version"))


def test_an_eligible_person_needs_consent_strata_and_contact_to_enroll():
    outcome = _screen(consent_version=None, levels={}, has_contact=False)
    assert {p.loc for p in outcome.problems} == {
        ("consent",),
        ("strata", "diagnosis"),
        ("contact",),
    }
