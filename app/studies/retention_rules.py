"""Rules of a definition's text messages, incentives and call rules (pure): SPEC 11.

An incentive is paid for a timepoint only if every arm has that timepoint: paying for
one only some arms answer would tell a blind coordinator, who sees the ledger, which
arm a participant is in.
"""

from __future__ import annotations

import string
from collections.abc import Iterator

from app.errors import FieldProblem
from app.studies.definition import StudyDefinition

SMS_FIELDS = frozenset({"link", "first_name"})


def retention_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    """Text messages' words, incentives' timepoints and call rules' codes."""
    yield from _sms_problems(d)
    yield from _incentive_problems(d)
    codes = [rule.code for rule in d.retention.call_rules]
    for i, code in enumerate(codes):
        if codes.index(code) != i:
            yield FieldProblem(("retention", "call_rules", i, "code"), f"{code!r} is given twice")


def sms_fields(text: str) -> set[str] | None:
    """The `{names}` a text message's words use; None when its braces are unbalanced or
    a field carries a format (`{link:>99}`) or a conversion (`{link!r}`): the words are
    filled in by plain replacement, never formatted."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        return None
    if any(spec or conversion for _, name, spec, conversion in parts if name is not None):
        return None
    return {name for _, name, _, _ in parts if name is not None}


def _sms_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    for field in ("invitation", "reminder"):
        text = getattr(d.sms, field)
        if text is not None:
            yield from _words_problems(d, ("sms", field), text)
        # Each language's words carry the link too (a translation is sent as it is).
        for language, texts in d.translations.items():
            translated = texts.get(f"sms.{field}")
            if translated is not None:
                loc = ("translations", language, f"sms.{field}")
                yield from _words_problems(d, loc, translated)
    if d.sms.enabled and d.sms.crisis_line is None:
        yield FieldProblem(
            ("sms", "crisis_line"),
            "needed with text messages: every text a participant sends is answered with it",
        )


def _words_problems(
    d: StudyDefinition, loc: tuple[str | int, ...], text: str
) -> Iterator[FieldProblem]:
    names = sms_fields(text)
    if names is None:
        yield FieldProblem(loc, "write {link} (and {first_name}) as they are, braces balanced")
    elif "link" not in names:
        yield FieldProblem(loc, "must carry the personal link: {link}")
    elif names - SMS_FIELDS:
        unknown = ", ".join(sorted(names - SMS_FIELDS))
        yield FieldProblem(loc, f"only {{link}} and {{first_name}}: not {unknown}")
    elif "first_name" in names and not d.sms.first_name:
        yield FieldProblem(loc, "{first_name} needs sms.first_name: true")


def arms_of_timepoint(d: StudyDefinition, timepoint: str) -> set[str]:
    """The arms whose participants get a survey at this timepoint (one that has at least
    one instrument for their arm)."""
    every = {arm.code for arm in d.arms}
    point = next((t for t in d.schedule if t.code == timepoint), None)
    if point is None:
        return set()
    found: set[str] = set()
    for code in point.instruments:
        instrument = next((i for i in d.instruments if i.code == code), None)
        if instrument is not None:
            found |= set(instrument.arms) if instrument.arms is not None else every
    return found & every


def _incentive_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    if d.incentives is None:
        return
    timepoints = {t.code for t in d.schedule}
    every = {arm.code for arm in d.arms}
    for code in d.incentives.per_timepoint:
        loc = ("incentives", "per_timepoint", code)
        if code not in timepoints:
            yield FieldProblem(loc, f"no timepoint {code!r}")
        elif arms_of_timepoint(d, code) != every:
            yield FieldProblem(
                loc,
                "only some arms answer this timepoint: paying for it would reveal the arm",
            )
