"""Engagement files, line by line (pure): what a row must hold to become an event.

A file is CSV (a header naming the columns) or JSON lines (one object per line), each
row `{event_id, participant, at, kind, count}`. A row at fault is rejected with its line
number and a problem in words that never repeats what was sent (a participant's code
stays out of the answer and the logs); the others are taken. Lines are read with a
bound (`MAX_LINE_BYTES`), so a file without line breaks costs no more memory than a
line.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

MAX_LINE_BYTES = 4096  # a row is some 150 bytes; room for the columns a platform adds
MAX_COUNT = 100_000
MAX_EVENT_ID = 128
MAX_PARTICIPANT = 32  # codes are at most 32 characters, pseudonyms 13
MAX_AT = 40
KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
KNOWN_KINDS = ("post", "reply", "login", "email_read")  # any other lower-case code is taken
REQUIRED = ("event_id", "participant", "at", "kind")
COLUMNS = (*REQUIRED, "count")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)  # a platform's clock a little ahead is not a fault
# Control characters and lone surrogates (PostgreSQL stores neither; JSON may carry both)
_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class LineSource(Protocol):
    """A binary file, as far as it is read: line by line."""

    def readline(self, limit: int = -1, /) -> bytes: ...


class FileFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class RowProblem(ValueError):
    """Why a row is rejected, in words for its sender."""


@dataclass(frozen=True, slots=True)
class Row:
    """A row as read: its fields by column name (text, or JSON values)."""

    line: int
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """A row that may be stored: `at` in UTC, `participant` as sent (a code or a
    pseudonym; the service resolves it)."""

    event_id: str
    participant: str
    at: datetime
    kind: str
    count: int


def lines(source: LineSource) -> Iterator[tuple[int, bytes | None]]:
    """(line number, the line without its end) for each line of the file; None in place
    of a line longer than MAX_LINE_BYTES, whose rest is skipped unread into memory."""
    number = 0
    while True:
        line = source.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := source.readline(64 * 1024)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


def decode(line: bytes) -> str:
    """The line as text: UTF-8 (a byte-order mark at the start of a file is dropped),
    without NUL characters."""
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RowProblem("the line is not UTF-8") from None
    if "\x00" in text:
        raise RowProblem("NUL characters are not accepted")
    return text


def json_row(line: int, text: str) -> Row:
    """A JSON line as a row: one object whose values are text, numbers or null."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise RowProblem("the line nests too deep to be a row") from None
    except ValueError:
        raise RowProblem("the line is not valid JSON") from None
    if not isinstance(value, dict):
        raise RowProblem("the line is not a JSON object")
    return Row(line, value)


def csv_header(text: str) -> list[str]:
    """The column names of a CSV file's first line; RowProblem unless it names every
    required column (the first line of a file without a header names none)."""
    names = [name.strip().lower() for name in next(csv.reader([text]), [])]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise RowProblem(
            "the first line must be a header naming the columns "
            f"{', '.join(COLUMNS)} (count may be left out); missing: {', '.join(missing)}"
        )
    if len(set(names)) != len(names):
        raise RowProblem("the header names a column twice")
    return names


def csv_row(line: int, text: str, header: list[str]) -> Row:
    """A CSV line as a row of the header's columns (quoted fields on one line)."""
    try:
        values = next(csv.reader([text], strict=True), [])
    except csv.Error:
        raise RowProblem("the line is not valid CSV") from None
    if len(values) != len(header):
        raise RowProblem(f"the line has {len(values)} fields; the header names {len(header)}")
    return Row(line, dict(zip(header, values, strict=True)))


def event_of(row: Row, *, now: datetime) -> Event:
    """The event a row holds, or RowProblem naming the first field at fault."""
    fields = row.fields
    for name in REQUIRED:
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RowProblem(f"{name} is missing")
    return Event(
        event_id=_event_id(fields["event_id"]),
        participant=_text(fields["participant"], "participant", MAX_PARTICIPANT),
        at=parse_at(fields["at"], now=now),
        kind=_kind(fields["kind"]),
        count=_count(fields.get("count")),
    )


def parse_at(value: Any, *, now: datetime) -> datetime:
    """An ISO 8601 time with its UTC offset (`Z` or `+02:00`), in UTC. A time without
    an offset is refused: read as UTC or as the study's time, a platform's local clock
    would move events across days and weeks unseen."""
    text = _text(value, "at", MAX_AT)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise RowProblem("at is not an ISO 8601 date and time") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise RowProblem("at has no UTC offset (write Z or +hh:mm)")
    at = at.astimezone(UTC)
    if at < EARLIEST:
        raise RowProblem("at is before 2000")
    if at > now + CLOCK_SKEW:
        raise RowProblem("at is in the future")
    return at


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise RowProblem(f"{name} must be text")
    text = value.strip()
    if len(text) > limit:
        raise RowProblem(f"{name} is longer than {limit} characters")
    if _UNFIT.search(text):
        raise RowProblem(f"{name} holds control characters or invalid Unicode")
    return text


def _event_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):  # JSON ids are often numbers
        value = str(value)
    return _text(value, "event_id", MAX_EVENT_ID)


def _kind(value: Any) -> str:
    text = _text(value, "kind", 32)
    if not KIND.fullmatch(text):
        raise RowProblem("kind must be a lower-case code (a-z, 0-9, _; at most 32)")
    return text


def _count(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 1
        if not (text.isascii() and text.isdigit()):
            raise RowProblem("count must be a whole number")
        value = int(text) if len(text) <= 7 else MAX_COUNT + 1
    if not isinstance(value, int) or isinstance(value, bool):
        raise RowProblem("count must be a whole number")
    if not 1 <= value <= MAX_COUNT:
        raise RowProblem(f"count must be from 1 to {MAX_COUNT:,}")
    return value
