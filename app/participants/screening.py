"""Screening (pure): eligibility answers, consent version and strata levels checked
against the study's definition, giving one list of every problem.

A person who fails a criterion is still recorded (ineligible, with the criteria as
reasons) so CONSORT can count exclusions; consent, strata and contact details are
required only to enroll.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.errors import FieldProblem
from app.studies.definition import StudyDefinition


@dataclass(frozen=True)
class Screening:
    """The outcome: the criteria not met, and every problem with the answers."""

    ineligible_reasons: list[str]
    problems: list[FieldProblem]

    @property
    def eligible(self) -> bool:
        return not self.ineligible_reasons


def screen(
    definition: StudyDefinition,
    *,
    answers: Mapping[str, bool],
    consent_version: str | None,
    levels: Mapping[str, str],
    has_contact: bool,
) -> Screening:
    """Check a screening; the paths of problems are those of the enrollment body."""
    problems: list[FieldProblem] = []
    reasons = _eligibility(definition, answers, problems)
    eligible = not reasons
    _strata(definition, levels, problems, required=eligible)
    _consent(definition, consent_version, problems, required=eligible)
    if eligible and not has_contact:
        problems.append(FieldProblem(("contact",), "contact details are required to enroll"))
    return Screening(reasons, problems)


def exclusion_labels(definition: StudyDefinition, codes: Sequence[str] | None) -> list[str] | None:
    """The criteria a screening failed, as CONSORT shows them (see `Criterion`)."""
    if codes is None:
        return None
    criteria = {c.code: c for c in definition.eligibility}
    return [criteria[c].exclusion_label() if c in criteria else c for c in codes]


def _eligibility(
    definition: StudyDefinition, answers: Mapping[str, bool], problems: list[FieldProblem]
) -> list[str]:
    criteria = {c.code: c for c in definition.eligibility}
    for code in answers:
        if code not in criteria:
            problems.append(FieldProblem(("screening", code), "not a criterion of this study"))
    reasons = []
    for code, criterion in criteria.items():
        if code not in answers:
            problems.append(FieldProblem(("screening", code), "answer every criterion"))
        elif answers[code] != criterion.must_be:
            reasons.append(code)
    return reasons


def _strata(
    definition: StudyDefinition,
    levels: Mapping[str, str],
    problems: list[FieldProblem],
    *,
    required: bool,
) -> None:
    factors = {f.code: f for f in definition.randomization.strata}
    for code, level in levels.items():
        if code not in factors:
            problems.append(FieldProblem(("strata", code), "not a stratification factor"))
        elif level not in factors[code].levels:
            allowed = ", ".join(factors[code].levels)
            problems.append(FieldProblem(("strata", code), f"{level!r} is not one of {allowed}"))
    if required:
        for code in factors:
            if code not in levels:
                problems.append(FieldProblem(("strata", code), "required to enroll"))


def _consent(
    definition: StudyDefinition,
    version: str | None,
    problems: list[FieldProblem],
    *,
    required: bool,
) -> None:
    if version is None:
        if required:
            problems.append(FieldProblem(("consent",), "consent is required to enroll"))
    elif version not in definition.consent_versions:
        accepted = ", ".join(definition.consent_versions)
        problems.append(
            FieldProblem(
                ("consent", "version"),
                f"consent version {version!r} is not accepted ({accepted})",
            )
        )
