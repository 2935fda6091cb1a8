"""Rules a study definition must keep beyond its shape (pure: no database, no HTTP)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from app.errors import FieldProblem, InvalidStudyDefinition
from app.randomization.blinding import NEVER_SEES_ARMS
from app.randomization.strata import MAX_STRATA, SITE, count_strata, longest_key
from app.studies.consent_rules import consent_problems, language_problems
from app.studies.definition import Anchor, Item, ItemType, StudyDefinition
from app.studies.retention_rules import retention_problems
from app.studies.translation import translation_problems

MAX_SITE_CODE = 12
MAX_STRATUM_KEY = 500  # the width of the stratum columns
# Columns every export has (SPEC section 5), or the unblinded one adds: no factor, item
# or score may take their names.
FIXED_COLUMNS = (
    *("pseudonym", "group", "timepoint", "status", "days_from_randomization"),
    *("arm", "arm_label", "stratum", "block", "block_size", "position"),
)
NUMERIC_TYPES = frozenset({ItemType.choice, ItemType.integer, ItemType.number, ItemType.boolean})


def parse_definition(data: Any) -> StudyDefinition:
    """Validate a whole document (shape, then rules); raise with every problem's path."""
    try:
        definition = StudyDefinition.model_validate(data)
    except ValidationError as exc:
        raise InvalidStudyDefinition(
            [FieldProblem(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
    check_definition(definition)
    return definition


def check_definition(definition: StudyDefinition) -> None:
    """Raise `InvalidStudyDefinition` listing every rule the definition breaks."""
    problems = list(definition_problems(definition))
    if problems:
        raise InvalidStudyDefinition(problems)


def definition_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    """Every rule broken, each with its path in the document."""
    yield from _duplicates(("arms",), (a.code for a in d.arms))
    arm_codes = {a.code for a in d.arms}
    r = d.randomization
    yield from block_size_problems(("randomization", "block_sizes"), r.block_sizes, d)
    yield from _duplicates(("randomization", "block_sizes"), r.block_sizes, what="size")
    if r.method == "blocks" and not r.block_sizes:
        yield FieldProblem(("randomization", "block_sizes"), "give at least one block size")
    yield from _duplicates(("randomization", "strata"), (f.code for f in r.strata))
    if SITE in {f.code for f in r.strata}:
        index = [f.code for f in r.strata].index(SITE)
        yield FieldProblem(
            ("randomization", "strata", index, "code"),
            f"{SITE!r} is reserved: use stratify_by_site",
        )
    for i, factor in enumerate(r.strata):
        yield from _duplicates(("randomization", "strata", i, "levels"), factor.levels, "level")
        for level in factor.labels:
            if level not in factor.levels:
                yield FieldProblem(
                    ("randomization", "strata", i, "labels", level), "not a level of the factor"
                )
    combinations = count_strata(sites=None, levels_per_factor=[len(f.levels) for f in r.strata])
    if combinations > MAX_STRATA:
        yield FieldProblem(
            ("randomization", "strata"),
            f"the factors' levels make {combinations} strata; {MAX_STRATA} at most",
        )
    longest = longest_key(
        by_site=r.stratify_by_site,
        site_code_length=MAX_SITE_CODE,
        factors=[(f.code, f.levels) for f in r.strata],
    )
    if longest > MAX_STRATUM_KEY:
        yield FieldProblem(
            ("randomization", "strata"),
            f"stratum keys could reach {longest} characters; {MAX_STRATUM_KEY} at most",
        )

    yield from _duplicates(("eligibility",), (c.code for c in d.eligibility))
    yield from _duplicates(("consent_versions",), d.consent_versions, what="version")
    for i, role in enumerate(d.blinding.arm_visible_to):
        if role in NEVER_SEES_ARMS:
            yield FieldProblem(
                ("blinding", "arm_visible_to", i), f"the {role} role must stay blind"
            )

    instruments = {ins.code: ins for ins in d.instruments}
    yield from _duplicates(("instruments",), (ins.code for ins in d.instruments))
    yield from _instrument_problems(d, arm_codes)
    yield from _export_column_problems(d)

    timepoints = {t.code: t for t in d.schedule}
    yield from _duplicates(("schedule",), (t.code for t in d.schedule))
    for i, tp in enumerate(d.schedule):
        if tp.close_after + tp.open_before < 0:
            yield FieldProblem(("schedule", i), "the window is empty")
        for j, code in enumerate(tp.instruments):
            if code not in instruments:
                yield FieldProblem(("schedule", i, "instruments", j), f"no instrument {code!r}")
    for i, code in enumerate(r.requires_completed):
        if code not in timepoints:
            yield FieldProblem(("randomization", "requires_completed", i), f"no timepoint {code!r}")
        elif timepoints[code].anchor is not Anchor.enrollment:
            yield FieldProblem(
                ("randomization", "requires_completed", i),
                f"timepoint {code!r} is anchored to randomization, so it cannot precede it",
            )

    if not _is_zone(d.timezone):
        yield FieldProblem(("timezone",), f"{d.timezone!r} is not an IANA time zone name")
    for i, tp in enumerate(d.schedule):
        if tp.anchor is Anchor.enrollment:
            for j, code in enumerate(tp.instruments):
                if code in instruments and instruments[code].arms:
                    yield FieldProblem(
                        ("schedule", i, "instruments", j),
                        f"{code!r} is for some arms only, and no arm is known before randomization",
                    )

    items = {it.code: it for ins in d.instruments for it in ins.items}
    scores = {s.code for ins in d.instruments for s in ins.scores}
    for i, alert in enumerate(d.alerts):
        if (alert.item is None) == (alert.score is None):
            yield FieldProblem(("alerts", i), "name exactly one of item or score")
        elif alert.item is not None and alert.item not in items:
            yield FieldProblem(("alerts", i, "item"), f"no item {alert.item!r}")
        elif alert.item is not None and items[alert.item].type not in NUMERIC_TYPES:
            yield FieldProblem(("alerts", i, "item"), "alerts need a numeric item")
        elif alert.score is not None and alert.score not in scores:
            yield FieldProblem(("alerts", i, "score"), f"no score {alert.score!r}")
    yield from _duplicates(("alerts",), (a.code for a in d.alerts))
    yield from language_problems(d)
    yield from translation_problems(d)
    yield from consent_problems(d)
    yield from retention_problems(d)


def _instrument_problems(d: StudyDefinition, arm_codes: set[str]) -> Iterator[FieldProblem]:
    # Item and score codes become export columns, so they must be unique study-wide.
    seen: dict[str, tuple[str | int, ...]] = {}
    reserved = set(FIXED_COLUMNS) | {f.code for f in d.randomization.strata} | {SITE}
    for i, ins in enumerate(d.instruments):
        for j, arm in enumerate(ins.arms or []):
            if arm not in arm_codes:
                yield FieldProblem(("instruments", i, "arms", j), f"no arm {arm!r}")
        items = {it.code: it for it in ins.items}
        for j, item in enumerate(ins.items):
            loc = ("instruments", i, "items", j)
            yield from _column_name(loc, item.code, seen, reserved)
            yield from _item_problems(loc, item)
        for j, score in enumerate(ins.scores):
            loc = ("instruments", i, "scores", j)
            yield from _column_name(loc, score.code, seen, reserved)
            for k, code in enumerate(score.items):
                if code not in items:
                    yield FieldProblem((*loc, "items", k), f"no item {code!r} in this instrument")
                elif items[code].type not in NUMERIC_TYPES:
                    yield FieldProblem((*loc, "items", k), f"item {code!r} is not numeric")
            for k, code in enumerate(score.reverse):
                if code not in score.items:
                    yield FieldProblem((*loc, "reverse", k), f"{code!r} is not one of the items")
                elif code in items and _bounds(items[code]) is None:
                    yield FieldProblem((*loc, "reverse", k), f"{code!r} has no min and max")
            if score.min_answered is not None and score.min_answered > len(score.items):
                yield FieldProblem((*loc, "min_answered"), "more than the number of items")


def _export_column_problems(d: StudyDefinition) -> Iterator[FieldProblem]:
    """Stratification factors are export columns too; and in the wide export each
    timepoint prefixes its columns (`month_4_who5_1`), which must not meet another's."""
    for i, factor in enumerate(d.randomization.strata):
        if factor.code in FIXED_COLUMNS or factor.code == SITE:
            yield FieldProblem(("randomization", "strata", i, "code"), "a name exports use")
    by_code = {ins.code: ins for ins in d.instruments}
    seen: dict[str, str] = {}
    for i, timepoint in enumerate(d.schedule):
        names = [f"{timepoint.code}_{suffix}" for suffix in ("status", "days_from_randomization")]
        for code in timepoint.instruments:
            ins = by_code.get(code)
            if ins is not None:
                codes = [x.code for x in ins.items] + [x.code for x in ins.scores]
                names += [f"{timepoint.code}_{code}" for code in codes]
        for name in names:
            if seen.setdefault(name, timepoint.code) != timepoint.code:
                yield FieldProblem(
                    ("schedule", i, "code"),
                    f"the wide export would have two columns {name!r} "
                    f"(timepoints {seen[name]!r} and {timepoint.code!r})",
                )


def _item_problems(loc: tuple[str | int, ...], item: Item) -> Iterator[FieldProblem]:
    if item.type in (ItemType.choice, ItemType.multi_choice):
        if not item.options:
            yield FieldProblem((*loc, "options"), f"a {item.type} item needs options")
        else:
            yield from _duplicates((*loc, "options"), (o.value for o in item.options), "value")
            if item.type is ItemType.choice and any(
                not isinstance(o.value, int) for o in item.options
            ):
                yield FieldProblem((*loc, "options"), "choice options are coded as integers")
    elif item.options is not None:
        yield FieldProblem((*loc, "options"), f"a {item.type} item takes no options")
    if item.min is not None or item.max is not None:
        if item.type not in (ItemType.integer, ItemType.number):
            yield FieldProblem((*loc, "min"), f"a {item.type} item takes no min or max")
        elif item.min is not None and item.max is not None and item.min > item.max:
            yield FieldProblem((*loc, "max"), "max is below min")
    if item.export and item.type is not ItemType.text:
        yield FieldProblem((*loc, "export"), "only text items need `export`")


def _column_name(
    loc: tuple[str | int, ...],
    code: str,
    seen: dict[str, tuple[str | int, ...]],
    reserved: set[str],
) -> Iterator[FieldProblem]:
    if code in reserved:
        yield FieldProblem((*loc, "code"), f"{code!r} is a reserved column name")
    elif code in seen:
        where = ".".join(str(p) for p in seen[code])
        yield FieldProblem((*loc, "code"), f"{code!r} is already used at {where}")
    else:
        seen[code] = loc


def _bounds(item: Item) -> tuple[float, float] | None:
    """The lowest and highest numeric value an item can take, if it has both."""
    if item.type is ItemType.choice and item.options:
        values = [o.value for o in item.options if isinstance(o.value, int)]
        return (min(values), max(values)) if values else None
    if item.type is ItemType.boolean:
        return (0, 1)
    if item.min is not None and item.max is not None:
        return (item.min, item.max)
    return None


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _duplicates(
    loc: tuple[str | int, ...], values: Iterable[Any], what: str = "code"
) -> Iterator[FieldProblem]:
    values = list(values)
    for value, count in Counter(values).items():
        if count > 1:
            index = len(values) - 1 - values[::-1].index(value)
            yield FieldProblem((*loc, index), f"duplicate {what} {value!r}")


def block_size_problems(
    loc: tuple[str | int, ...], sizes: Iterable[int], definition: StudyDefinition
) -> Iterator[FieldProblem]:
    """Block sizes that are not a multiple of the sum of the arm ratios."""
    total = sum(a.ratio for a in definition.arms)
    for i, size in enumerate(sizes):
        if size % total:
            yield FieldProblem(
                (*loc, i), f"{size} is not a multiple of the sum of the arm ratios ({total})"
            )
