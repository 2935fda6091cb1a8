"""The study's own texts in its other languages (pure): which texts need a translation,
what validation says of missing and unknown ones, the translated definition, and its
cache following the study's revision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.demo import demo_definition
from app.errors import InvalidStudyDefinition
from app.studies import service
from app.studies.definition import StudyDefinition
from app.studies.models import Study
from app.studies.translation import MISSING, UNKNOWN, texts, translated, translation_problems
from app.studies.validation import definition_problems, parse_definition


def _demo(**changes: object) -> StudyDefinition:
    return StudyDefinition.model_validate(demo_definition() | changes)


def test_the_texts_participants_see_are_named_by_codes_and_staff_texts_are_not():
    found = texts(_demo())
    assert found["participant_title"] == "Online Peer Support Study" and "title" not in found
    assert found["instruments.who5.items.who5_1.options.5"] == "All of the time"
    assert found["randomization.strata.diagnosis.labels.bipolar"] == "Bipolar disorder"
    assert "instruments.who5.title" in found and "crisis_text" in found
    assert "join.ineligible_text" in found and "eligibility.age_18_plus.text" in found
    # Staff texts are not translated; consent documents are written in each language.
    assert not any(p.startswith(("arms", "alerts", "consent")) for p in found)
    # A level without a label is shown in words from its code: those words need one too.
    bare = demo_definition()
    bare["randomization"]["strata"][0]["labels"] = {}
    assert (
        texts(StudyDefinition.model_validate(bare))[
            "randomization.strata.diagnosis.labels.schizophrenia_spectrum"
        ]
        == "Schizophrenia spectrum"
    )


def test_each_missing_or_unknown_translation_is_a_problem_at_its_path():
    document = demo_definition()
    spanish = dict(document["translations"]["es"])
    del spanish["instruments.phq9.items.phq9_9.text"]
    spanish["instruments.phq9.items.phq9_10.text"] = "¿Otra?"
    d = StudyDefinition.model_validate(document | {"translations": {"es": spanish}})
    problems = {(p.loc, p.msg) for p in translation_problems(d)}
    assert problems == {
        (("translations", "es", "instruments.phq9.items.phq9_9.text"), MISSING),
        (("translations", "es", "instruments.phq9.items.phq9_10.text"), UNKNOWN),
    }
    assert problems <= {(p.loc, p.msg) for p in definition_problems(d)}
    assert not list(definition_problems(_demo()))  # the demo is complete


def test_the_translated_definition_shows_every_text_in_the_language():
    d = _demo()
    spanish = translated(d, "es")
    assert translated(d, "en") is d
    assert spanish.shown_to_participants() == "Estudio de Apoyo entre Pares en Línea"
    item = spanish.instrument("who5").items[0]
    assert item.text == "Me he sentido alegre y de buen humor"
    assert item.options and item.options[0].label == "Todo el tiempo"
    assert spanish.randomization.strata[0].label("bipolar") == "Trastorno bipolar"
    assert spanish.arms == d.arms and spanish.alerts == d.alerts  # staff texts stay
    assert set(texts(spanish)) == set(texts(d))
    assert not set(texts(spanish).values()) & set(texts(d).values()) - {"Online Peer Support Study"}


def test_the_cached_translation_follows_the_studys_revision():
    document = demo_definition()
    study = Study(id=987_654, revision=1, created_at=datetime(2027, 1, 4, tzinfo=UTC))
    study.definition = document
    first = service.definition_in(study, "es")
    assert first.shown_to_participants() == "Estudio de Apoyo entre Pares en Línea"
    assert service.definition_in(study, "es") is first  # parsed once per revision
    amended = dict(document["translations"]["es"]) | {"participant_title": "Estudio Pares"}
    study.definition = document | {"translations": {"es": amended}}
    assert service.definition_in(study, "es") is first  # same revision: the cache holds
    study.revision = 2
    assert service.definition_in(study, "es").shown_to_participants() == "Estudio Pares"
    assert service.definition_in(study, None) is service.definition_of(study)


def test_a_translation_too_long_for_where_it_goes_is_refused_not_left_to_break_a_page():
    document = demo_definition()
    labels = "randomization.strata.diagnosis.labels.bipolar"
    document["translations"]["es"][labels] = "x" * 300  # a level's label takes 200
    with pytest.raises(InvalidStudyDefinition) as refused:
        parse_definition(document)
    [problem] = refused.value.problems
    assert problem.loc == ("translations", "es") and "labels.bipolar" in problem.msg
