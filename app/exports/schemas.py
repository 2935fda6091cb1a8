"""The answers of the export routes that are not data files."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.exports.dataset import Column
from app.exports.formats import ESCAPING
from app.exports.labels import MISSING_TEXT
from app.exports.names import file_names


class AllowedValue(BaseModel):
    value: int | str
    label: str


class CodebookEntry(BaseModel):
    name: str
    label: str
    type: str = Field(description="string, integer, number or boolean (Table Schema types)")
    unit: str | None
    values: list[AllowedValue] | None = Field(description="coded values and their labels")
    instrument: str | None = Field(description="the instrument the column comes from")
    timepoint: str | None = Field(description="the timepoint (wide shape)")
    file_name: str = Field(description="the column's name in the Stata and SPSS files")


class Codebook(BaseModel):
    study: str
    shape: str
    table: str | None = Field(
        default=None, description="the safety table (adverse_events, deviations), if one"
    )
    columns: list[CodebookEntry]
    csv_text: str = Field(
        default=ESCAPING, description="how text that looks like a formula is written in CSV"
    )
    missing_values: str = Field(
        default=MISSING_TEXT, description="what a missing value means, in each format"
    )


def codebook(slug: str, shape: str, columns: list[Column], table: str | None = None) -> Codebook:
    return Codebook(
        study=slug,
        shape=shape,
        table=table,
        columns=[
            CodebookEntry.model_validate(c.describe() | {"file_name": name})
            for c, name in zip(columns, file_names(columns), strict=True)
        ],
    )
