"""Rules of a definition's languages and consent documents (pure): SPEC 10.

Every consent version comes in each of the study's languages, and its quiz asks the
same questions with the same right answers in each, so that a pass means the same
whichever language a participant chose.
"""

from __future__ import annotations

from collections.abc import Iterator

from app.errors import FieldProblem
from app.i18n.languages import LANGUAGES
from app.studies.definition import ConsentDocument, StudyDefinition


def language_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    """Languages the product has no catalog for, repeated ones, and translations of a
    language the study does not list (or of its default language)."""
    seen: set[str] = set()
    for i, code in enumerate(d.languages):
        if code not in LANGUAGES:
            known = ", ".join(LANGUAGES)
            yield FieldProblem(("languages", i), f"{code!r} is not available (one of {known})")
        if code in seen:
            yield FieldProblem(("languages", i), f"{code!r} is listed twice")
        seen.add(code)
    for code in d.translations:
        if code not in d.languages[1:]:
            yield FieldProblem(
                ("translations", code), "translate only into the study's other languages"
            )


def consent_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    """Each consent document: an accepted version, once; every language; a sound quiz."""
    versions = [doc.version for doc in d.consent.documents]
    for i, doc in enumerate(d.consent.documents):
        loc: tuple[str | int, ...] = ("consent", "documents", i)
        if doc.version not in d.consent_versions:
            yield FieldProblem((*loc, "version"), "list the version in consent_versions too")
        if versions.index(doc.version) != i:
            yield FieldProblem((*loc, "version"), f"version {doc.version!r} is given twice")
        for language in d.languages:
            if language not in doc.texts:
                yield FieldProblem((*loc, "texts", language), "missing: the study lists it")
        for language in doc.texts:
            if language not in d.languages:
                yield FieldProblem((*loc, "texts", language), "not one of the study's languages")
        yield from _quiz_problems(loc, doc, d.languages[0])


def _quiz_problems(
    loc: tuple[str | int, ...], doc: ConsentDocument, default: str
) -> Iterator[FieldProblem]:
    for language, text in doc.texts.items():
        codes = [q.code for q in text.quiz]
        for j, question in enumerate(text.quiz):
            here = (*loc, "texts", language, "quiz", j)
            if codes.index(question.code) != j:
                yield FieldProblem((*here, "code"), f"{question.code!r} is used twice")
            values = [o.value for o in question.options]
            if len(set(values)) != len(values):
                yield FieldProblem((*here, "options"), "each option needs a value of its own")
            if question.answer not in values:
                yield FieldProblem((*here, "answer"), "the answer must be one of the options")
        if doc.pass_mark is not None and doc.pass_mark > len(text.quiz):
            yield FieldProblem(
                (*loc, "pass_mark"), f"the quiz in {language!r} has {len(text.quiz)} questions"
            )
    reference = doc.texts.get(default)
    if reference is None:
        return
    shape = [(q.code, q.answer, sorted(o.value for o in q.options)) for q in reference.quiz]
    for language, text in doc.texts.items():
        mine = [(q.code, q.answer, sorted(o.value for o in q.options)) for q in text.quiz]
        if language != default and mine != shape:
            yield FieldProblem(
                (*loc, "texts", language, "quiz"),
                f"ask the same questions, options and answers as in {default!r}",
            )
