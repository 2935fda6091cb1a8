"""Allocation tables prepared by an independent statistician (pure: parse and check).

CSV with a header; required columns `stratum`, `sequence`, `arm`; optional `block`,
`block_size`, `position`. Each stratum's sequence numbers run 1..n without a gap.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.errors import FieldProblem
from app.randomization.strata import SITE, UNSTRATIFIED, expected_factors, parse_stratum_key

REQUIRED = ("stratum", "sequence", "arm")
OPTIONAL = ("block", "block_size", "position")
MAX_ROWS = 200_000
MAX_BYTES = 16 * 1024 * 1024  # the largest upload taken (413 beyond): ~200,000 rows
MAX_NUMBER = 1_000_000_000


@dataclass(frozen=True)
class TableRow:
    stratum: str
    sequence: int
    arm: str
    block: int | None = None
    block_size: int | None = None
    position: int | None = None


def parse_table(
    text: str, *, arms: Iterable[str], factors: Sequence[tuple[str, Sequence[str]]], by_site: bool
) -> tuple[list[TableRow], list[FieldProblem]]:
    """Rows of the CSV and every problem found (path: `rows`, row number, column)."""
    arm_codes = set(arms)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    problems = [FieldProblem(("header",), f"missing column {c!r}") for c in missing]
    problems += [FieldProblem(("header",), f"unknown column {c!r}") for c in unknown]
    if problems:
        return [], problems
    rows: list[TableRow] = []
    for number, raw in enumerate(reader, start=1):
        if number > MAX_ROWS:
            return [], [FieldProblem(("rows",), f"at most {MAX_ROWS} rows")]
        record = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        loc = ("rows", number)
        stratum = record["stratum"]
        problems += [
            FieldProblem((*loc, "stratum"), m) for m in _stratum_problems(stratum, factors, by_site)
        ]
        if record["arm"] not in arm_codes:
            problems.append(FieldProblem((*loc, "arm"), f"no arm {record['arm']!r}"))
        numbers: dict[str, int | None] = {}
        for column in ("sequence", *OPTIONAL):
            value = record.get(column, "")
            if value == "" and column != "sequence":
                numbers[column] = None
                continue
            try:
                number = int(value)
                if not 1 <= number <= MAX_NUMBER:
                    raise ValueError
                numbers[column] = number
            except ValueError:
                problems.append(
                    FieldProblem((*loc, column), f"a whole number from 1 to {MAX_NUMBER}")
                )
                numbers[column] = None
        if numbers["sequence"] is not None:
            rows.append(
                TableRow(
                    stratum=stratum,
                    sequence=numbers["sequence"],
                    arm=record["arm"],
                    block=numbers["block"],
                    block_size=numbers["block_size"],
                    position=numbers["position"],
                )
            )
    if not rows and not problems:
        problems.append(FieldProblem(("rows",), "the table has no rows"))
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_stratum[row.stratum].append(row.sequence)
    for stratum, numbers_seen in by_stratum.items():
        if sorted(numbers_seen) != list(range(1, len(numbers_seen) + 1)):
            problems.append(
                FieldProblem(("rows",), f"{stratum}: sequence numbers must run 1..n, each once")
            )
    return rows, problems


def _stratum_problems(
    key: str, factors: Sequence[tuple[str, Sequence[str]]], by_site: bool
) -> list[str]:
    expected = expected_factors(by_site=by_site, factors=[code for code, _ in factors])
    if not expected:
        return [] if key == UNSTRATIFIED else [f"the study is not stratified: use {UNSTRATIFIED!r}"]
    try:
        parts = parse_stratum_key(key)
    except ValueError:
        return [f"{key!r} is not like site=PHL|factor=level"]
    if list(parts) != expected:
        return [f"give {'|'.join(f'{c}=…' for c in expected)}, in that order"]
    levels = dict(factors)
    return [
        f"{value!r} is not a level of {code}"
        for code, value in parts.items()
        if code != SITE and value not in levels[code]
    ]


def table_digest(rows: Iterable[TableRow]) -> str:
    """SHA-256 of the table in a canonical form (sorted, fixed columns)."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: (r.stratum, r.sequence)):
        fields = (row.stratum, row.sequence, row.arm, row.block, row.block_size, row.position)
        digest.update((",".join("" if f is None else str(f) for f in fields) + "\n").encode())
    return digest.hexdigest()
