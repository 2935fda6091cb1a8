"""How a dataset is written: CSV and JSON in chunks, the codebook, the data package's
descriptor (pure).

CSV: UTF-8, a header row of column names, an empty cell for a missing value, `true` and
`false` for booleans, text a spreadsheet would run as a formula escaped (`spreadsheet_safe`;
every CSV the product writes goes through it). JSON: an array of objects, `null` for a
missing value, text as it is. Both are written as a stream of chunks of about
`CHUNK_CHARS`, so an export of any size is written in constant memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.exports.dataset import Column, Shape
from app.exports.labels import MISSING_TEXT
from app.exports.names import file_names

CHUNK_CHARS = 64 * 1024
MISSING = ""


# Text a spreadsheet (Excel, LibreOffice, Google Sheets) would take for a formula when it
# opens a CSV (OWASP "CSV injection"), and the apostrophe that escapes it, itself escaped
# so that the rule can be undone exactly.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
ESCAPING = (
    "Text cells of the CSV files that began with =, +, -, @, a tab, a carriage return "
    "or an apostrophe (') were written with an apostrophe (') in front, so that a "
    "spreadsheet shows them as text instead of running them as formulas; numbers such "
    "as -3 or -0.5 are written as they are. To get the original text back, remove the "
    "first apostrophe of every text cell that begins with one. The JSON export keeps the "
    "original text."
)


def spreadsheet_safe(text: str) -> str:
    """The text as a CSV cell a spreadsheet shows as text: prefixed with `'` when it
    starts like a formula (or with `'`), unless it is a number."""
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def cell(value: Any) -> Any:
    """A value as CSV writes it."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value


def csv_chunks(cols: Sequence[Column], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header, then the rows, as CSV text in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([cell(c.name) for c in cols])
    for row in rows:
        writer.writerow([cell(v) for v in row])
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(cols: Sequence[Column], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The rows as a JSON array of objects, in chunks."""
    names = [c.name for c in cols]
    parts: list[str] = ["["]
    size = 1
    first = True
    for row in rows:
        text = ("\n" if first else ",\n") + json.dumps(
            dict(zip(names, row, strict=True)), ensure_ascii=False
        )
        first = False
        parts.append(text)
        size += len(text)
        if size >= CHUNK_CHARS:
            yield "".join(parts)
            parts, size = [], 0
    parts.append("\n]\n")
    yield "".join(parts)


CODEBOOK_FIELDS = (
    "name",
    "label",
    "type",
    "unit",
    "values",
    "instrument",
    "timepoint",
    "file_name",
    "csv_text",
)


def codebook_csv(cols: Sequence[Column]) -> str:
    """The codebook as CSV: one row per column; values as `value=label` joined by `; `;
    `file_name` is the column's name in the Stata and SPSS files; `csv_text` says, for
    text columns, how text that looks like a formula was escaped. Missing values: see
    `labels.MISSING_TEXT` (in the data package's description)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CODEBOOK_FIELDS)
    for col, name in zip(cols, file_names(cols), strict=True):
        described = col.describe()
        described["values"] = "; ".join(f"{v}={label}" for v, label in col.values)
        described["file_name"] = name
        described["csv_text"] = ESCAPING if col.type == "string" else None
        writer.writerow([cell(described[name]) for name in CODEBOOK_FIELDS])
    return buffer.getvalue()


def dataset_key(shape: Shape) -> list[str]:
    """The primary key of the dataset in that shape."""
    return ["pseudonym", "timepoint"] if shape is Shape.long else ["pseudonym"]


def table_schema(
    cols: Sequence[Column],
    *,
    shape: Shape = Shape.long,
    participants: bool = False,
    key: Sequence[str] | None = None,
    parent: str | None = None,
) -> dict[str, Any]:
    """The Frictionless Table Schema of a dataset (types, allowed values, missing values,
    primary key: `key`, else the dataset's of that shape; with `parent`, each row's
    `pseudonym` is one of that resource's)."""
    fields = []
    for col in cols:
        spec: dict[str, Any] = {"name": col.name, "title": col.label, "type": col.type}
        if col.unit:
            spec["description"] = f"unit: {col.unit}"
        if col.closed and col.values:
            spec["constraints"] = {"enum": [v for v, _ in col.values]}
        if col.type == "boolean":
            spec["trueValues"], spec["falseValues"] = ["true"], ["false"]
        fields.append(spec)
    if key is None:
        key = ["pseudonym"] if participants else dataset_key(shape)
    schema: dict[str, Any] = {
        "fields": fields,
        "missingValues": [MISSING],
        "primaryKey": list(key),
    }
    if parent is not None:
        schema["foreignKeys"] = [
            {"fields": ["pseudonym"], "reference": {"resource": parent, "fields": ["pseudonym"]}}
        ]
    return schema


@dataclass(frozen=True)
class Resource:
    """One file of the data package: its name, path, columns, primary key, and the
    resource its pseudonyms come from (if any)."""

    name: str
    path: str
    columns: Sequence[Column]
    key: Sequence[str]
    parent: str | None = None
    description: str = MISSING_TEXT


def data_package(*, name: str, title: str, resources: Sequence[Resource]) -> dict[str, Any]:
    """The `datapackage.json` of the export: one tabular resource per `Resource`."""
    return {
        "name": name,
        "title": title,
        "description": ESCAPING,
        "profile": "tabular-data-package",
        "resources": [
            {
                "name": resource.name,
                "path": resource.path,
                "profile": "tabular-data-resource",
                "description": resource.description,
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "dialect": {"delimiter": ",", "lineTerminator": "\r\n", "header": True},
                "schema": table_schema(resource.columns, key=resource.key, parent=resource.parent),
            }
            for resource in resources
        ],
    }
