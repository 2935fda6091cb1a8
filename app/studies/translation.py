"""The study's own participant-visible texts in each of its languages (pure): SPEC 10.

A definition is written in its first language; `translations` gives, for each other
language, every text participants see, named by a path of codes rather than positions
(`instruments.who5.items.who5_1.text`, `instruments.who5.items.who5_1.options.5`,
`randomization.strata.diagnosis.labels.bipolar`), so that reordering items or adding
an option never silently attaches a translation to the wrong text.

What participants see, and so must be translated: the study's name (its
`participant_title`, or its `title` when it has none), eligibility criteria (and their
questions as the screening page asks them), the
questions and level words of the strata, the instruments' titles, instructions,
questions, hints, section headings and option labels, the intro paragraph, the crisis
and support texts and the text shown to people who cannot take part. Not translated:
arm labels and alert texts (staff only), `fails_text` (CONSORT), and consent documents
(written in each language already).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from app.errors import FieldProblem
from app.studies.definition import StudyDefinition, words_of

MISSING = "missing translation"
UNKNOWN = "not a participant-visible text of this study"
SMS_TEXTS = ("invitation", "reminder", "crisis_line")


def texts(definition: StudyDefinition) -> dict[str, str]:
    """Every participant-visible text of the definition, by path, in its first language."""
    d = definition
    found: dict[str, str] = {}
    if d.participant_title:
        found["participant_title"] = d.participant_title
    else:
        found["title"] = d.title
    for criterion in d.eligibility:
        found[f"eligibility.{criterion.code}.text"] = criterion.text
        if criterion.question:
            found[f"eligibility.{criterion.code}.question"] = criterion.question
    for factor in d.randomization.strata:
        here = f"randomization.strata.{factor.code}"
        if factor.question:
            found[f"{here}.question"] = factor.question
        for level in factor.levels:
            found[f"{here}.labels.{level}"] = factor.label(level)
    for instrument in d.instruments:
        here = f"instruments.{instrument.code}"
        if instrument.participant_title:
            found[f"{here}.participant_title"] = instrument.participant_title
        else:
            found[f"{here}.title"] = instrument.title
        if instrument.instructions:
            found[f"{here}.instructions"] = instrument.instructions
        for item in instrument.items:
            at = f"{here}.items.{item.code}"
            found[f"{at}.text"] = item.text
            if item.instructions:
                found[f"{at}.instructions"] = item.instructions
            if item.section:
                found[f"{at}.section"] = item.section
            for option in item.options or []:
                found[f"{at}.options.{option.value}"] = option.label
    if d.intro is not None and d.intro.text:
        found["intro.text"] = d.intro.text
    if d.crisis_text:
        found["crisis_text"] = d.crisis_text
    if d.support_text:
        found["support_text"] = d.support_text
    if d.join.ineligible_text:
        found["join.ineligible_text"] = d.join.ineligible_text
    for key in SMS_TEXTS:  # SPEC 11: a participant's texts, in their language too
        if getattr(d.sms, key):
            found[f"sms.{key}"] = getattr(d.sms, key)
    return found


def translation_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    """For each language after the first: each text without a translation, and each
    translation of a path that names no participant-visible text."""
    wanted = texts(d)
    for language in d.languages[1:]:
        given = d.translations.get(language, {})
        for path in wanted:
            if not given.get(path, "").strip():
                yield FieldProblem(("translations", language, path), MISSING)
        for path in given:
            if path not in wanted:
                yield FieldProblem(("translations", language, path), UNKNOWN)
        if any(path not in given for path in wanted):
            continue
        # A translation must fit where its text goes (a level's label takes 200
        # characters, a translation up to 2000): the translated document is validated
        # as the original was, so no page or message in that language can fail later.
        try:
            translated(d, language)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                yield FieldProblem(("translations", language), f"{where}: {error['msg']}")


def translated(definition: StudyDefinition, language: str) -> StudyDefinition:
    """The definition with its participant-visible texts in this language (the
    definition itself in its first language, or in a language it does not list). A
    text without a translation stays as written (validation refuses such a study)."""
    if language == definition.languages[0] or language not in definition.languages:
        return definition
    given = definition.translations.get(language, {})
    if not given:
        return definition
    document: dict[str, Any] = definition.model_dump(mode="json", exclude_unset=False)

    def put(path: str, value: str | None) -> str | None:
        return given.get(path, value) if value is not None else None

    document["title"] = put("title", document["title"])
    document["participant_title"] = put("participant_title", document["participant_title"])
    for criterion in document["eligibility"]:
        here = f"eligibility.{criterion['code']}"
        criterion["text"] = put(f"{here}.text", criterion["text"])
        criterion["question"] = put(f"{here}.question", criterion["question"])
    for factor in document["randomization"]["strata"]:
        here = f"randomization.strata.{factor['code']}"
        factor["question"] = put(f"{here}.question", factor["question"])
        labels = dict(factor["labels"])
        for level in factor["levels"]:
            shown = labels.get(level) or words_of(level)
            labels[level] = given.get(f"{here}.labels.{level}", shown)
        factor["labels"] = labels
    for instrument in document["instruments"]:
        here = f"instruments.{instrument['code']}"
        instrument["title"] = put(f"{here}.title", instrument["title"])
        for key in ("participant_title", "instructions"):
            instrument[key] = put(f"{here}.{key}", instrument[key])
        for item in instrument["items"]:
            at = f"{here}.items.{item['code']}"
            for key in ("text", "instructions", "section"):
                item[key] = put(f"{at}.{key}", item[key])
            for option in item["options"] or []:
                option["label"] = put(f"{at}.options.{option['value']}", option["label"])
    if document["intro"] is not None:
        document["intro"]["text"] = put("intro.text", document["intro"]["text"])
    for key in ("crisis_text", "support_text"):
        document[key] = put(key, document[key])
    document["join"]["ineligible_text"] = put(
        "join.ineligible_text", document["join"]["ineligible_text"]
    )
    for key in SMS_TEXTS:
        document["sms"][key] = put(f"sms.{key}", document["sms"][key])
    return StudyDefinition.model_validate(document)
