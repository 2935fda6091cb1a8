"""Check a Trialdesk study's allocations from its revealed secret: a standalone verifier.

After a study's database lock, Trialdesk reveals the study's randomization secret. With
the secret, the study JSON and the unblinded export, anyone can check that:

1. the secret is the one the study committed to at activation:
   ``commitment == sha256(secret_bytes + slug_utf8)`` (hex);
2. every allocation in the export is the one the permuted-block rule gives: block
   ``k`` of a stratum has the size and, at each position, the arm that
   HMAC-SHA256(secret, "<stratum>|<k>|size|<n>") and "<stratum>|<k>|order|<n>" draw
   (8-byte big-endian integers, rejection sampling, a Fisher-Yates shuffle of the arms
   each repeated ``ratio * size / sum(ratios)`` times);
3. each stratum's allocations are the start of its sequence, no slot skipped.

Run it::

    python3 verify_allocations.py --secret HEX --study STUDY.json --export UNBLINDED.csv \\
        [--commitment HEX]

``STUDY.json`` is the study definition document (``slug``, ``arms``,
``randomization.block_sizes``), converted to JSON if it is YAML, or the study record
``GET /api/v1/studies/{slug}`` returns to an admin or unblinded statistician after lock
(it also carries ``commitment``, used unless ``--commitment`` is given).
``UNBLINDED.csv`` is the unblinded export, long (one row per participant and timepoint)
or wide (one row per participant); its ``stratum``, ``block``, ``block_size``,
``position`` and ``arm`` columns are read, the others ignored. Rows without a stratum
(participants never randomized) are skipped.

It prints one line per problem found and a summary line, and exits 0 when everything
holds, 1 when anything does not, 2 when it cannot check (bad arguments or input).
Studies that allocate from an uploaded table (``randomization.method: table``) are
out of its scope.

It needs Python 3.9 or later and nothing but its standard library, so that it can be
read in full and run anywhere: ``python3 -I -S verify_allocations.py ...``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, TextIO

OK, FOUND_PROBLEMS, CANNOT_CHECK = 0, 1, 2
SECRET_BYTES = 32
MAX_FIELD = 1_000_000  # characters in one CSV field
MAX_STUDY_JSON = 10_000_000  # bytes of the study file
MAX_BLOCK_SIZE = 1000  # Trialdesk allows 120; far larger blocks are not a real design
REQUIRED_COLUMNS = ("stratum", "block", "block_size", "position", "arm")
HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")


class InputError(Exception):
    """The input cannot be checked: the message says why, in one line."""


def refuse(message: str) -> NoReturn:
    raise InputError(message)


# --- the permuted-block rule (app/randomization/blocks.py) --------------------------


class HmacStream:
    """Uniform integers from HMAC-SHA256(secret, "<label>|<counter>") used as a byte stream."""

    def __init__(self, secret: bytes, label: str) -> None:
        self._secret = secret
        self._label = label.encode("utf-8")
        self._counter = 0
        self._buffer = b""

    def _bytes(self, n: int) -> bytes:
        while len(self._buffer) < n:
            message = self._label + b"|" + str(self._counter).encode("utf-8")
            self._buffer += hmac.new(self._secret, message, hashlib.sha256).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def below(self, n: int) -> int:
        """A uniform integer in [0, n): 8-byte big-endian draws, the biased top rejected."""
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            value = int.from_bytes(self._bytes(8), "big")
            if value < limit:
                return value % n


@dataclass(frozen=True)
class Arm:
    code: str
    ratio: int


@dataclass(frozen=True)
class Design:
    """What re-deriving needs of a study, and the commitment it published (if any)."""

    slug: str
    arms: tuple[Arm, ...]
    block_sizes: tuple[int, ...]
    commitment: str | None


def block_size(secret: bytes, stratum: str, block: int, sizes: Sequence[int]) -> int:
    """The size of block `block` (1-based) of the stratum."""
    return sizes[HmacStream(secret, f"{stratum}|{block}|size").below(len(sizes))]


def block_arms(
    secret: bytes, stratum: str, block: int, size: int, arms: Sequence[Arm]
) -> list[str]:
    """The arms of the block in order: a Fisher-Yates shuffle of the balanced multiset."""
    total = sum(arm.ratio for arm in arms)
    content = [arm.code for arm in arms for _ in range(arm.ratio * size // total)]
    stream = HmacStream(secret, f"{stratum}|{block}|order")
    for i in range(len(content) - 1, 0, -1):
        j = stream.below(i + 1)
        content[i], content[j] = content[j], content[i]
    return content


def commitment(secret: bytes, slug: str) -> str:
    return hashlib.sha256(secret + slug.encode("utf-8")).hexdigest()


class Blocks:
    """Each block of each stratum, derived once: (its size, its arms in order)."""

    def __init__(self, secret: bytes, design: Design) -> None:
        self._secret = secret
        self._design = design
        self._derived: dict[tuple[str, int], tuple[int, list[str]]] = {}

    def get(self, stratum: str, block: int) -> tuple[int, list[str]]:
        key = (stratum, block)
        if key not in self._derived:
            size = block_size(self._secret, stratum, block, self._design.block_sizes)
            arms = block_arms(self._secret, stratum, block, size, self._design.arms)
            self._derived[key] = (size, arms)
        return self._derived[key]


# --- reading the inputs -------------------------------------------------------------


def parse_hex_digest(text: str, what: str) -> str:
    """A 64-digit hex string (a secret or a commitment), lower-cased."""
    text = text.strip()
    if not HEX_DIGEST.fullmatch(text):
        refuse(f"{what} must be {2 * SECRET_BYTES} hex digits ({SECRET_BYTES} bytes)")
    return text.lower()


def read_study(path: str, commitment_option: str | None) -> Design:
    """The design in a study definition document or a study record (JSON)."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_STUDY_JSON + 1)
    except OSError as error:
        refuse(f"cannot read the study file {path}: {error.strerror or error}")
    if len(raw) > MAX_STUDY_JSON:
        refuse(f"the study file {path} is over {MAX_STUDY_JSON} bytes")
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        refuse(f"the study file {path} is not UTF-8 JSON")
    if not isinstance(document, dict):
        refuse("the study JSON must be an object")
    return design_of(document, commitment_option)


def design_of(document: dict[str, object], commitment_option: str | None) -> Design:
    slug = document.get("slug")
    if not isinstance(slug, str) or not slug:
        refuse("the study JSON has no `slug`")
    randomization = document.get("randomization")
    if not isinstance(randomization, dict):
        refuse("the study JSON has no `randomization` object")
    method = randomization.get("method", "blocks")
    if method == "table":
        refuse(
            f"study {slug} allocates from an uploaded table (randomization.method "
            '"table"): out of scope, this script checks permuted blocks only'
        )
    if method != "blocks":
        refuse(f"unknown randomization.method {method!r}")
    arms = arms_of(document)
    sizes = block_sizes_of(randomization, arms)
    published = published_commitment(document, commitment_option)
    return Design(slug=slug, arms=arms, block_sizes=sizes, commitment=published)


def published_commitment(document: dict[str, object], option: str | None) -> str | None:
    """The commitment to check: `--commitment`, else the study record's (None: neither)."""
    if option is not None:
        return parse_hex_digest(option, "--commitment")
    published = document.get("commitment")
    if published is None:
        return None
    if not isinstance(published, str):
        refuse("the study JSON's `commitment` is not a string")
    return parse_hex_digest(published, "the study JSON's `commitment`")


def arms_of(document: dict[str, object]) -> tuple[Arm, ...]:
    listed = document.get("arms")
    if listed is None:
        refuse(
            "the study JSON has no `arms`: give the definition, or the study record as "
            "an admin or unblinded statistician gets it"
        )
    if not isinstance(listed, list) or len(listed) < 2:
        refuse("the study JSON's `arms` must be a list of at least two arms")
    arms: list[Arm] = []
    for entry in listed:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("code"), str)
            or not entry["code"]
        ):
            refuse("every arm in the study JSON must be an object with a `code`")
        code, ratio = entry["code"], entry.get("ratio", 1)
        if not is_int(ratio) or ratio < 1:
            refuse(f"arm {show(code)}: `ratio` must be a whole number of at least 1")
        arms.append(Arm(code=code, ratio=ratio))
    if len({arm.code for arm in arms}) < len(arms):
        refuse("the study JSON lists an arm code twice")
    return tuple(arms)


def block_sizes_of(randomization: dict[str, object], arms: Sequence[Arm]) -> tuple[int, ...]:
    sizes = randomization.get("block_sizes")
    if sizes is None:
        refuse(
            "the study JSON has no `randomization.block_sizes`: give the study definition "
            "(a study record holds them only for roles that may see the design)"
        )
    if not isinstance(sizes, list) or not sizes:
        refuse("`randomization.block_sizes` must be a non-empty list")
    total = sum(arm.ratio for arm in arms)
    for size in sizes:
        if not is_int(size) or not 1 <= size <= MAX_BLOCK_SIZE:
            refuse(f"block size {size!r} is not a whole number in 1..{MAX_BLOCK_SIZE}")
        if size % total:
            refuse(f"block size {size} is not a multiple of the arm ratios' sum {total}")
    return tuple(sizes)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Allocation:
    """One allocation as a row of the export gives it, and the line that row starts on."""

    stratum: str
    block: int
    block_size: int
    position: int
    arm: str
    line: int


def read_export(path: str) -> Iterator[Allocation]:
    """Every row of the export with a stratum, as an allocation (repeats included)."""
    csv.field_size_limit(MAX_FIELD)
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            yield from allocations_in(file, path)
    except OSError as error:
        refuse(f"cannot read the export {path}: {error.strerror or error}")
    except UnicodeDecodeError:
        refuse(f"the export {path} is not UTF-8")
    except csv.Error as error:
        refuse(f"the export {path} is not a CSV file that can be read: {error}")


def allocations_in(file: TextIO, path: str) -> Iterator[Allocation]:
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None:
        refuse(f"the export {path} is empty")
    names = [name.strip() for name in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        refuse(f"the export {path} has no column {', '.join(missing)}")
    index = {column: names.index(column) for column in REQUIRED_COLUMNS}
    while True:
        line = reader.line_num + 1  # where the row starts: a quoted field may span lines
        row = next(reader, None)
        if row is None:
            return
        values = {c: row[i].strip() if i < len(row) else "" for c, i in index.items()}
        if not values["stratum"]:
            continue
        if not values["arm"]:
            refuse(f"the export {path}, line {line}: a stratum but no arm")
        yield Allocation(
            stratum=values["stratum"],
            block=whole_number(values["block"], "block", path, line),
            block_size=whole_number(values["block_size"], "block_size", path, line),
            position=whole_number(values["position"], "position", path, line),
            arm=values["arm"],
            line=line,
        )


def whole_number(text: str, column: str, path: str, line: int) -> int:
    if not WHOLE_NUMBER.fullmatch(text):
        refuse(f"the export {path}, line {line}: {column} {text[:40]!r} is not a whole number")
    return int(text)


# --- checking -----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Finding:
    """One problem, sorted by where it is: stratum, block, position."""

    stratum: str
    block: int
    position: int
    text: str = field(compare=False)


Slot = tuple[str, int, int]


@dataclass
class Ledger:
    """The export's allocations, one per slot, and the conflicts between its rows."""

    slots: dict[Slot, Allocation] = field(default_factory=dict)
    conflicts: list[Finding] = field(default_factory=list)
    _seen: set[tuple[Slot, str, int]] = field(default_factory=set)

    def add(self, allocation: Allocation) -> None:
        slot = (allocation.stratum, allocation.block, allocation.position)
        first = self.slots.setdefault(slot, allocation)
        same = (first.arm, first.block_size) == (allocation.arm, allocation.block_size)
        if same or (slot, allocation.arm, allocation.block_size) in self._seen:
            return
        self._seen.add((slot, allocation.arm, allocation.block_size))
        self.conflicts.append(
            Finding(
                *slot,
                f"CONFLICT {where(*slot)}: line {first.line} gives {show(first.arm)} "
                f"(block_size {first.block_size}), line {allocation.line} gives "
                f"{show(allocation.arm)} (block_size {allocation.block_size})",
            )
        )


def where(stratum: str, block: int, position: int | None = None) -> str:
    place = f"stratum={show(stratum)} block={block}"
    return place if position is None else f"{place} position={position}"


def show(value: str) -> str:
    """The value as it is, or quoted when it has spaces or characters a terminal acts on."""
    plain = value.isprintable() and not any(c.isspace() for c in value)
    return value if plain and value else repr(value)


def check_commitment(secret: bytes, design: Design) -> list[Finding]:
    if design.commitment is None:
        return []
    derived = commitment(secret, design.slug)
    if hmac.compare_digest(derived, design.commitment):
        return []
    text = (
        f"COMMITMENT slug={show(design.slug)}: the study published {design.commitment}, "
        f"the secret gives {derived}"
    )
    return [Finding("", 0, 0, text)]


def check_slots(ledger: Ledger, blocks: Blocks) -> list[Finding]:
    """Each allocation against the block the secret gives: its size, position and arm."""
    findings: list[Finding] = []
    for (stratum, block, position), allocation in ledger.slots.items():
        if block < 1:
            text = f"RANGE {where(stratum, block, position)}: blocks are numbered from 1"
            findings.append(Finding(stratum, block, position, text))
            continue
        size, arms = blocks.get(stratum, block)
        here = where(stratum, block, position)
        if allocation.block_size != size:
            text = (
                f"MISMATCH {here}: export says block_size {allocation.block_size}, "
                f"the secret gives {size}"
            )
            findings.append(Finding(stratum, block, position, text))
        if not 1 <= position <= size:
            text = f"RANGE {here}: the secret gives this block positions 1..{size}"
            findings.append(Finding(stratum, block, position, text))
        elif allocation.arm != arms[position - 1]:
            text = (
                f"MISMATCH {here}: export says {show(allocation.arm)}, "
                f"the secret gives {show(arms[position - 1])}"
            )
            findings.append(Finding(stratum, block, position, text))
    return findings


def check_no_skips(ledger: Ledger, blocks: Blocks) -> list[Finding]:
    """In each stratum, blocks 1..B complete but for the last, whose positions run from 1."""
    positions: dict[str, dict[int, set[int]]] = {}
    for stratum, block, position in ledger.slots:
        if block >= 1:
            positions.setdefault(stratum, {}).setdefault(block, set()).add(position)
    findings: list[Finding] = []
    for stratum, taken in positions.items():
        last = max(taken)
        previous = 0
        for block in sorted(taken):
            if block > previous + 1:
                findings.append(missing_blocks(stratum, previous + 1, block - 1, blocks))
            size, arms = blocks.get(stratum, block)
            valid = {p for p in taken[block] if 1 <= p <= size}
            top = size if block < last else max(valid, default=0)
            for position in range(1, top + 1):
                if position not in valid:
                    text = (
                        f"SKIPPED {where(stratum, block, position)}: not in the export "
                        f"(the secret gives {show(arms[position - 1])})"
                    )
                    findings.append(Finding(stratum, block, position, text))
            previous = block
    return findings


def missing_blocks(stratum: str, first: int, last: int, blocks: Blocks) -> Finding:
    """Whole blocks with no allocation in the export: one finding for the run."""
    if first == last:
        size = blocks.get(stratum, first)[0]
        text = f"SKIPPED {where(stratum, first)}: none of its {size} positions is in the export"
    else:
        text = (
            f"SKIPPED stratum={show(stratum)} blocks={first}-{last}: none of these "
            f"{last - first + 1} blocks is in the export"
        )
    return Finding(stratum, first, 0, text)


@dataclass(frozen=True)
class Report:
    findings: list[Finding]
    allocations: int
    strata: int
    commitment_checked: bool

    def lines(self) -> list[str]:
        """One line per finding, then the summary."""
        lines = [finding.text for finding in self.findings]
        if not self.commitment_checked:
            lines.append("NOTE: no --commitment given and none in the study JSON: not checked")
        if self.findings:
            problems = "problem" if len(self.findings) == 1 else "problems"
            lines.append(
                f"FAILED: {len(self.findings)} {problems} in {self.allocations} allocations"
            )
        else:
            checked = "commitment matches" if self.commitment_checked else "commitment not checked"
            lines.append(
                f"ok: {self.allocations} allocations in {self.strata} strata re-derived; {checked}"
            )
        return lines


# --- command line -------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="verify_allocations.py",
        description="Re-derive a Trialdesk study's allocations from its revealed secret.",
    )
    parser.add_argument("--secret", required=True, help="the study secret (hex)")
    parser.add_argument("--study", required=True, help="study definition or study record (JSON)")
    parser.add_argument("--export", required=True, help="the unblinded export (CSV)")
    parser.add_argument(
        "--commitment", help="the published commitment (hex); default: the study JSON's"
    )
    return parser.parse_args(argv)


def verify(options: argparse.Namespace) -> Report:
    secret = bytes.fromhex(parse_hex_digest(options.secret, "--secret"))
    design = read_study(options.study, options.commitment)
    ledger = Ledger()
    for allocation in read_export(options.export):
        ledger.add(allocation)
    blocks = Blocks(secret, design)
    by_place = ledger.conflicts + check_slots(ledger, blocks) + check_no_skips(ledger, blocks)
    return Report(
        findings=check_commitment(secret, design) + sorted(by_place),
        allocations=len(ledger.slots),
        strata=len({stratum for stratum, _, _ in ledger.slots}),
        commitment_checked=design.commitment is not None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments(argv)
    try:
        report = verify(options)
    except InputError as error:
        print(f"verify_allocations.py: {error}", file=sys.stderr)
        return CANNOT_CHECK
    for line in report.lines():
        print(line)
    return FOUND_PROBLEMS if report.findings else OK


if __name__ == "__main__":
    sys.exit(main())
