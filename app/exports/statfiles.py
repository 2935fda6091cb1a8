"""Stata (.dta) and SPSS (.sav) files of a dataset, with variable and value labels.

The rules (the codebook says the same, column by column):

- **Names.** Each column keeps its name when it is a valid Stata and SPSS name of at most
  28 characters (Stata's 32, less room for the number pyreadstat appends to name its
  value labels); else its characters other than a-z, A-Z, 0-9 and _ become `_`, a
  reserved word gets `_v` after it, and a longer name keeps its first 22 characters,
  then `_` and 5 letters of a hash of the whole name (the codebook's `file_name`).
- **Labels.** Variable labels are the codebook's labels (an item's text), cut to 80
  characters (Stata) or 256 bytes (SPSS) with "..." at the end; value labels are the
  codebook's, cut to 120 bytes in SPSS.
- **Types.** Numbers and integers are doubles; booleans 0 (No) / 1 (Yes); a column with a
  closed list of text codes (group, status, mode, timepoint, strata, withdrawal kind, a
  choice with text values) is stored as 1..k in the codebook's order, labelled; other
  text (pseudonym, multiple choices, exported free text) as strings.
- **Missing values** of answers and scores (numeric, boolean or coded): Stata `.a` "not
  given" (the survey was not completed) and `.b` "skipped" (completed, left blank); SPSS
  user-missing values -9 and -8, except in a column whose values may be negative (there
  both are system-missing, and the row's status tells them apart, as in the CSV).

pyreadstat writes a whole data frame to a path: the dataset is held in memory once (about
8 bytes per numeric cell plus the strings) while the file is written, then the file is
streamed back from a private temporary folder and deleted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

# pandas, numpy and pyreadstat are loaded on the first Stata or SPSS file, not at start:
# they are a fifth of a server's objects, and every full garbage collection walks them.

from app.exports.labels import MISSING_CODES, NOT_GIVEN, SKIPPED
from app.exports.model import Column
from app.exports.names import file_names

STATA_LABEL_CHARS = 80
SPSS_LABEL_BYTES = 256
SPSS_VALUE_LABEL_BYTES = 120
COMPLETED = "completed"


def _cut(text: str, *, chars: int | None = None, size: int | None = None) -> str:
    if chars is not None and len(text) > chars:
        text = text[: chars - 3] + "..."
    if size is not None and len(text.encode()) > size:
        while len(text.encode()) > size - 3:
            text = text[:-1]
        text += "..."
    return text


@dataclass
class _Plan:
    """How one column is written."""

    col: Column
    kind: str  # number | boolean | coded | text
    codes: dict[Any, int] = field(default_factory=dict)  # coded: value → 1..k
    status_at: int | None = None  # the row's survey status (answers and scores)
    data: list[Any] = field(default_factory=list)

    def add(self, value: Any, row: Sequence[Any]) -> None:
        if value is None:
            self.data.append(self._missing(row))
        elif self.kind == "text":
            self.data.append(str(value))
        elif self.kind == "boolean":
            self.data.append(1.0 if value else 0.0)
        elif self.kind == "coded":
            self.data.append(float(self.codes[value]) if value in self.codes else math.nan)
        else:
            self.data.append(float(value))

    def _missing(self, row: Sequence[Any]) -> Any:
        if self.kind == "text":
            return ""
        if self.status_at is None:
            return math.nan
        return SKIPPED if row[self.status_at] == COMPLETED else NOT_GIVEN

    @property
    def labels(self) -> dict[float, str]:
        if self.kind == "boolean":
            return {0.0: "No", 1.0: "Yes"}
        if self.kind == "coded":
            return {float(self.codes[v]): label for v, label in self.col.values}
        if self.kind == "number" and self.col.values:
            return {float(v): label for v, label in self.col.values}
        return {}


def _plans(cols: Sequence[Column]) -> list[_Plan]:
    names = [c.name for c in cols]
    plans = []
    for col in cols:
        if col.type == "boolean":
            kind = "boolean"
        elif col.type in ("integer", "number"):
            kind = "number"
        elif col.closed and col.values:
            kind = "coded"
        else:
            kind = "text"
        plan = _Plan(col, kind)
        if kind == "coded":
            plan.codes = {value: n for n, (value, _) in enumerate(col.values, start=1)}
        if col.answer_like and kind != "text":
            status = f"{col.timepoint}_status" if col.timepoint else "status"
            plan.status_at = names.index(status) if status in names else None
        plans.append(plan)
    return plans


def write(
    path: Path, cols: Sequence[Column], rows: Iterable[Sequence[Any]], *, fmt: str, label: str
) -> None:
    """Write the rows as a Stata (`fmt="dta"`) or SPSS (`"sav"`) file at `path`."""
    plans = _plans(cols)
    for row in rows:
        for plan, value in zip(plans, row, strict=True):
            plan.add(value, row)
    names = file_names(cols)
    if fmt == "dta":
        _write_dta(path, plans, names, label)
    else:
        _write_sav(path, plans, names, label)


def _frame(plans: list[_Plan], names: list[str], missing: dict[str, Any] | None) -> pd.DataFrame:
    import pandas as pd

    columns: dict[str, pd.Series] = {}
    for plan, name in zip(plans, names, strict=True):
        data = plan.data
        if plan.kind == "text":
            columns[name] = pd.Series(data, dtype=object)
            continue
        if missing is not None and plan.status_at is not None:
            data = [missing.get(v, v) if isinstance(v, str) else v for v in data]
        else:
            data = [math.nan if isinstance(v, str) else v for v in data]
        has_codes = any(isinstance(v, str) for v in data)
        columns[name] = pd.Series(data, dtype=object if has_codes else "float64")
    return pd.DataFrame(columns)


def _write_dta(path: Path, plans: list[_Plan], names: list[str], label: str) -> None:
    letters = {k: str(v["stata"]).lstrip(".") for k, v in MISSING_CODES.items()}
    frame = _frame(plans, names, letters)
    answered = [n for p, n in zip(plans, names, strict=True) if p.status_at is not None]
    import pyreadstat

    pyreadstat.write_dta(
        frame,
        str(path),
        file_label=_cut(label, chars=STATA_LABEL_CHARS),
        column_labels=[_cut(p.col.label, chars=STATA_LABEL_CHARS) for p in plans],
        variable_value_labels={n: p.labels for p, n in zip(plans, names, strict=True) if p.labels},
        missing_user_values={n: sorted(letters.values()) for n in answered},
        version=15,
    )


def _spss_codes(plan: _Plan) -> dict[str, Any] | None:
    if plan.status_at is None or plan.col.may_be_negative:
        return None
    return {k: v["spss"] for k, v in MISSING_CODES.items()}


def _write_sav(path: Path, plans: list[_Plan], names: list[str], label: str) -> None:
    codes = {k: v["spss"] for k, v in MISSING_CODES.items()}
    for plan in plans:
        if plan.status_at is not None and _spss_codes(plan) is None:
            plan.data = [math.nan if isinstance(v, str) else v for v in plan.data]
    frame = _frame(plans, names, codes)
    ranges: dict[str, list[Any]] = {
        n: sorted(float(c) for c in codes.values())
        for p, n in zip(plans, names, strict=True)
        if _spss_codes(p) is not None
    }
    for name in ranges:
        frame[name] = frame[name].astype("float64")
    value_labels = {
        n: {v: _cut(t, size=SPSS_VALUE_LABEL_BYTES) for v, t in p.labels.items()}
        for p, n in zip(plans, names, strict=True)
        if p.labels
    }
    import pyreadstat

    pyreadstat.write_sav(
        frame,
        str(path),
        file_label=_cut(label, size=64),
        column_labels=[_cut(p.col.label, size=SPSS_LABEL_BYTES) for p in plans],
        variable_value_labels=value_labels,
        missing_ranges=ranges,
    )
