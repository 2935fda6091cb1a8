"""The R script of the data package (pure): reads each CSV with the codebook's types, coded
columns as factors with their labels, a `label` attribute on every column (as haven and
labelled do), and the CSV's formula escaping undone. Plain base R, no package needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from app.exports.model import Column

R_TYPES = {"integer": "integer", "number": "numeric", "boolean": "logical", "string": "character"}


def r_string(text: str) -> str:
    """A string literal R reads back as `text` (JSON's escapes are R's for these)."""
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    """Text on one comment line: every line break R (or an editor) knows, and any other
    whitespace or control character, made one space, so no title can end the comment."""
    return " ".join("".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text).split())


def _vector(values: Sequence[str]) -> str:
    return "c(" + ", ".join(values) + ")"


def _r_value(value: int | str) -> str:
    return str(value) if isinstance(value, int) else r_string(value)


def _table(name: str, cols: Sequence[Column]) -> list[str]:
    types = [f"  {r_string(c.name)} = {r_string(R_TYPES[c.type])}" for c in cols]
    labels = [f"  {r_string(c.name)} = {r_string(c.label)}" for c in cols]
    factors = []
    for col in cols:
        if col.closed and col.values:
            levels = _vector([_r_value(v) for v, _ in col.values])
            names = _vector([r_string(label) for _, label in col.values])
            factors.append(f"  {r_string(col.name)} = list(levels = {levels}, labels = {names})")
    return [
        f"{name} <- read_trialdesk(",
        f"  {r_string(name + '.csv')},",
        "  types = c(",
        ",\n".join("  " + t for t in types),
        "  ),",
        "  factors = list(",
        ",\n".join("  " + f for f in factors),
        "  ),",
        "  labels = c(",
        ",\n".join("  " + label for label in labels),
        "  )",
        ")",
        "",
    ]


def script(slug: str, title: str, tables: Sequence[tuple[str, Sequence[Column]]]) -> str:
    """The script: `source("{slug}.R")` in the unzipped package's folder makes one data
    frame per table."""
    lines = [
        f"# {_comment(title)}: the blinded data package, read into R.",
        f'# Run source("{slug}.R") in the folder of the unzipped package.',
        "# Coded columns become factors with the codebook's labels; each column carries its",
        '# label in attr(x, "label"). Missing: NA; the row\'s survey status says whether the',
        "# survey was not given or the item skipped (see codebook and datapackage.json).",
        "",
        "read_trialdesk <- function(path, types, factors, labels) {",
        '  data <- utils::read.csv(path, colClasses = types, na.strings = "",',
        '    check.names = FALSE, stringsAsFactors = FALSE, encoding = "UTF-8")',
        '  for (name in names(types)[types == "character"]) {',
        "    # Text that began like a formula was written with an apostrophe in front.",
        '    data[[name]] <- sub("^\'", "", data[[name]])',
        "  }",
        "  for (name in names(factors)) {",
        "    f <- factors[[name]]",
        "    data[[name]] <- factor(data[[name]], levels = f$levels, labels = f$labels)",
        "  }",
        '  for (name in names(labels)) attr(data[[name]], "label") <- labels[[name]]',
        "  data",
        "}",
        "",
    ]
    for name, cols in tables:
        lines += _table(name, cols)
    return "\n".join(lines)
