"""The answers of the export routes that are not data files."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.exports.dataset import Column
from app.exports.formats import ESCAPING


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


class Codebook(BaseModel):
    study: str
    shape: str
    columns: list[CodebookEntry]
    csv_text: str = Field(
        default=ESCAPING, description="how text that looks like a formula is written in CSV"
    )


def codebook(slug: str, shape: str, columns: list[Column]) -> Codebook:
    return Codebook(
        study=slug,
        shape=shape,
        columns=[CodebookEntry.model_validate(c.describe()) for c in columns],
    )
