"""`tools/verify_allocations.py`: the standalone verifier, run as a third party would run
it (standard library only) on ledgers the project's own block rule produced."""

from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from app.randomization.blocks import ArmRatio, Slot, commitment, sequence
from app.randomization.strata import stratum_key
from app.studies.definition import StudyDefinition
from app.studies.schemas import (
    ArmRead,
    FactorRead,
    RandomizationDesignRead,
    RandomizationRead,
    SiteRead,
    StudyReadUnblinded,
    StudyReadWithArms,
    StudyReadWithDesign,
)

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "verify_allocations.py"
SECRET = bytes(range(32))
WRONG_SECRET = bytes(range(1, 33))
SLUG = "peer-support"
ARMS = [ArmRatio("listserv", 1), ArmRatio("bulletin_board", 1), ArmRatio("control", 1)]
LABELS = {"listserv": "Email list-serv", "bulletin_board": "Bulletin board", "control": "Control"}
SIZES = [3, 6]
DIAGNOSES = ["bipolar", "depressive"]
# Participants per stratum: 32 in all, several blocks in the larger strata.
COUNTS = {("PHL", "bipolar"): 13, ("PHL", "depressive"): 7, ("PIT", "bipolar"): 8}
COUNTS[("PIT", "depressive")] = 4
TIMEPOINTS = ["baseline", "month_4", "month_12"]
BIG = "site=PHL|diagnosis=bipolar"  # the stratum with the most blocks


@dataclass(frozen=True)
class Allocated:
    pseudonym: str
    stratum: str
    slot: Slot


def key(site: str, diagnosis: str) -> str:
    return stratum_key(site=site, factors=["diagnosis"], levels={"diagnosis": diagnosis})


def ledger() -> list[Allocated]:
    """Every participant's allocation, as the project's block rule hands them out,
    interleaved across strata as enrollment would."""
    per_stratum = {
        key(site, diagnosis): sequence(
            secret=SECRET, stratum=key(site, diagnosis), count=n, sizes=SIZES, arms=ARMS
        )
        for (site, diagnosis), n in COUNTS.items()
    }
    allocated: list[Allocated] = []
    for round_ in range(max(COUNTS.values())):
        for stratum, slots in per_stratum.items():
            if round_ < len(slots):
                pseudonym = f"P{len(allocated) + 1:03d}"
                allocated.append(Allocated(pseudonym, stratum, slots[round_]))
    return allocated


def definition() -> dict[str, object]:
    """A study definition document the project itself accepts."""
    document = {
        "slug": SLUG,
        "title": "Online peer support",
        "arms": [{"code": a.code, "label": LABELS[a.code], "ratio": a.ratio} for a in ARMS],
        "randomization": {
            "block_sizes": SIZES,
            "stratify_by_site": True,
            "strata": [{"code": "diagnosis", "levels": DIAGNOSES}],
        },
        "consent_versions": ["1.0"],
    }
    StudyDefinition.model_validate(document)
    return document


def study_record(
    *, published: str | None, arms: bool = True, design: bool = True
) -> dict[str, object]:
    """The study as the API returns it after lock: to an admin (arms and design), or to
    roles that see only one of them."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    common = {
        "slug": SLUG,
        "title": "Online peer support",
        "status": "locked",
        "commitment": published,
        "created_at": now,
        "activated_at": now,
        "locked_at": now,
        "arm_count": len(ARMS),
        "randomization": RandomizationDesignRead(
            method="blocks",
            stratify_by_site=True,
            strata=[FactorRead(code="diagnosis", levels=DIAGNOSES)],
            requires_completed=[],
            block_sizes=SIZES,
        ),
        "eligibility": [],
        "consent_versions": ["1.0"],
        "schedule": [],
        "sites": [SiteRead(code="PHL", name="Philadelphia"), SiteRead(code="PIT", name="Pgh")],
        "secret": SECRET.hex(),
    }
    if not arms:
        return StudyReadWithDesign(**common).model_dump(mode="json")
    arm_reads = [ArmRead(code=a.code, label=LABELS[a.code], ratio=a.ratio) for a in ARMS]
    if not design:
        del common["secret"]
        common["randomization"] = RandomizationRead(
            **common["randomization"].model_dump(exclude={"block_sizes"})
        )
        return StudyReadWithArms(**common, arms=arm_reads).model_dump(mode="json")
    # serialize_as_any: StudyReadUnblinded inherits `randomization: RandomizationRead`
    # from StudyReadWithArms (first in its bases), so a plain dump, and the API's
    # answer, leave out the block sizes its RandomizationDesignRead value holds.
    record = StudyReadUnblinded(**common, arms=arm_reads)
    return record.model_dump(mode="json", serialize_as_any=True)


HEADER = [
    "pseudonym",
    "group",
    "timepoint",
    "stratum",
    "block",
    "block_size",
    "position",
    "arm",
    "arm_label",
    "who5_1",
    "notes",
]


def long_rows(allocated: list[Allocated]) -> list[list[str]]:
    """The long shape: one row per participant and timepoint, plus one never randomized."""
    rows = []
    for a in allocated:
        s = a.slot
        for i, timepoint in enumerate(TIMEPOINTS):
            place = [a.stratum, str(s.block), str(s.block_size), str(s.position), s.arm]
            note = 'said "fine, thanks"\nthen left'
            rows.append([a.pseudonym, "G1", timepoint, *place, LABELS[s.arm], str(i), note])
    rows.append(["P999", "", "baseline", "", "", "", "", "", "", "3", ""])
    return rows


def wide_rows(allocated: list[Allocated]) -> list[list[str]]:
    header = ["pseudonym", "stratum", "block", "block_size", "position", "arm", "baseline_who5"]
    rows = [header]
    for a in allocated:
        s = a.slot
        rows.append([a.pseudonym, a.stratum, *map(str, [s.block, s.block_size, s.position])])
        rows[-1] += [s.arm, "4"]
    return rows


def run(
    tmp_path: Path,
    *,
    rows: list[list[str]] | None = None,
    header: list[str] = HEADER,
    study: dict[str, object] | None = None,
    secret: str = SECRET.hex(),
    extra: tuple[str, ...] = ("--commitment", commitment(secret=SECRET, slug=SLUG)),
) -> subprocess.CompletedProcess[str]:
    """The script on this export and study, as a subprocess without site-packages."""
    export, study_file = tmp_path / "unblinded.csv", tmp_path / "study.json"
    with export.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows([header, *(long_rows(ledger()) if rows is None else rows)])
    study_file.write_text(json.dumps(definition() if study is None else study), "utf-8")
    command = [sys.executable, "-I", "-S", str(SCRIPT), "--secret", secret]
    command += ["--study", str(study_file), "--export", str(export), *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)


def changed(index: int, **slot_changes: object) -> list[Allocated]:
    """The ledger with one participant's allocation changed on all their rows."""
    allocated = ledger()
    a = allocated[index]
    allocated[index] = replace(a, slot=replace(a.slot, **slot_changes))
    return allocated


def index_of(stratum: str, block: int, position: int) -> int:
    return next(
        i
        for i, a in enumerate(ledger())
        if (a.stratum, a.slot.block, a.slot.position) == (stratum, block, position)
    )


def other_arm(arm: str) -> str:
    return next(a.code for a in ARMS if a.code != arm)


# --- an honest export -------------------------------------------------------------------


def test_the_ledger_spans_several_blocks_of_both_sizes():
    slots = [a.slot for a in ledger()]
    assert len(slots) == 32
    assert {s.block_size for s in slots} == {3, 6}
    assert max(a.slot.block for a in ledger() if a.stratum == BIG) >= 3


def test_an_honest_long_export_passes_with_the_commitment_checked(tmp_path):
    result = run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "ok: 32 allocations in 4 strata re-derived; commitment matches\n"
    assert result.stderr == ""


def test_an_honest_wide_export_passes(tmp_path):
    rows = wide_rows(ledger())
    result = run(tmp_path, header=rows[0], rows=rows[1:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith("ok: 32 allocations in 4 strata re-derived; commitment matches\n")


def test_without_any_commitment_it_says_so_and_still_re_derives(tmp_path):
    result = run(tmp_path, extra=())
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "NOTE: no --commitment given and none in the study JSON: not checked",
        "ok: 32 allocations in 4 strata re-derived; commitment not checked",
    ]


def test_the_study_record_as_the_api_gives_it_is_accepted_with_its_commitment(tmp_path):
    record = study_record(published=commitment(secret=SECRET, slug=SLUG))
    result = run(tmp_path, study=record, extra=())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "ok: 32 allocations in 4 strata re-derived; commitment matches\n"


def test_the_study_records_commitment_is_checked_and_the_option_overrides_it(tmp_path):
    record = study_record(published="ab" * 32)
    result = run(tmp_path, study=record, extra=())
    assert result.returncode == 1
    assert result.stdout.startswith(f"COMMITMENT slug={SLUG}: the study published {'ab' * 32}")
    assert run(tmp_path, study=record).returncode == 0  # --commitment: the right one


# --- tampering and gaps -----------------------------------------------------------------


def test_a_changed_arm_is_named_by_its_stratum_block_and_position(tmp_path):
    index = index_of(BIG, 2, 3)
    true_arm = ledger()[index].slot.arm
    result = run(tmp_path, rows=long_rows(changed(index, arm=other_arm(true_arm))))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"MISMATCH stratum={BIG} block=2 position=3: "
        f"export says {other_arm(true_arm)}, the secret gives {true_arm}",
        "FAILED: 1 problem in 32 allocations",
    ]


def test_a_skipped_slot_is_named(tmp_path):
    index = index_of(BIG, 2, 2)
    allocated = ledger()
    dropped = allocated.pop(index)
    result = run(tmp_path, rows=long_rows(allocated))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"SKIPPED stratum={BIG} block=2 position=2: not in the export "
        f"(the secret gives {dropped.slot.arm})",
        "FAILED: 1 problem in 31 allocations",
    ]


def test_a_skipped_whole_block_is_named(tmp_path):
    allocated = [a for a in ledger() if (a.stratum, a.slot.block) != (BIG, 2)]
    size = next(a.slot.block_size for a in ledger() if (a.stratum, a.slot.block) == (BIG, 2))
    result = run(tmp_path, rows=long_rows(allocated))
    assert result.returncode == 1
    assert f"SKIPPED stratum={BIG} block=2: none of its {size} positions is in the export\n" in (
        result.stdout
    )


def test_dropping_the_last_allocation_of_a_stratum_is_no_gap(tmp_path):
    allocated = ledger()
    last = max(i for i, a in enumerate(allocated) if a.stratum == BIG)
    del allocated[last]
    result = run(tmp_path, rows=long_rows(allocated))
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok: 31 allocations in 4 strata")


def test_a_wrong_secret_fails_the_commitment_and_the_allocations(tmp_path):
    result = run(tmp_path, secret=WRONG_SECRET.hex())
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert lines[0].startswith(f"COMMITMENT slug={SLUG}: the study published ")
    assert commitment(secret=WRONG_SECRET, slug=SLUG) in lines[0]
    assert sum(line.startswith("MISMATCH ") for line in lines) >= 10
    assert lines[-1].startswith("FAILED: ") and lines[-1].endswith(" in 32 allocations")


def test_a_changed_block_size_is_a_finding(tmp_path):
    index = next(i for i, a in enumerate(ledger()) if a.slot.block_size == 3)
    a = ledger()[index]
    result = run(tmp_path, rows=long_rows(changed(index, block_size=6)))
    assert result.returncode == 1
    here = f"stratum={a.stratum} block={a.slot.block} position={a.slot.position}"
    assert result.stdout.splitlines()[0] == (
        f"MISMATCH {here}: export says block_size 6, the secret gives 3"
    )


def test_a_position_beyond_the_block_is_a_finding(tmp_path):
    index = next(i for i, a in enumerate(ledger()) if a.slot.block_size == 3)
    a = ledger()[index]
    result = run(tmp_path, rows=long_rows(changed(index, position=4)))
    assert result.returncode == 1
    here = f"stratum={a.stratum} block={a.slot.block} position=4"
    assert f"RANGE {here}: the secret gives this block positions 1..3\n" in result.stdout


def test_conflicting_repeats_of_one_allocation_are_a_finding(tmp_path):
    rows = long_rows(ledger())
    index = index_of(BIG, 1, 1)
    a = ledger()[index]
    row = rows[index * len(TIMEPOINTS) + 2]  # the participant's month_12 row only
    row[HEADER.index("arm")] = other_arm(a.slot.arm)
    result = run(tmp_path, rows=rows)
    assert result.returncode == 1
    first = 2 + index * len(TIMEPOINTS) * 2  # after the header, 2 lines a row (the note)
    assert result.stdout.splitlines() == [
        f"CONFLICT stratum={BIG} block=1 position=1: line {first} gives {a.slot.arm} "
        f"(block_size {a.slot.block_size}), line {first + 4} gives {other_arm(a.slot.arm)} "
        f"(block_size {a.slot.block_size})",
        "FAILED: 1 problem in 32 allocations",
    ]


def test_values_a_terminal_would_act_on_are_quoted(tmp_path):
    rows = long_rows(ledger())
    rows[0][HEADER.index("arm")] = "\x1b[2Jcontrol"
    result = run(tmp_path, rows=rows)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout
    assert "'\\x1b[2Jcontrol'" in result.stdout


# --- what it cannot check ---------------------------------------------------------------


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr


def test_a_secret_that_is_not_hex_is_refused(tmp_path):
    assert_refused(run(tmp_path, secret="zz" * 32), "--secret", "64 hex digits")


def test_a_secret_of_the_wrong_length_is_refused(tmp_path):
    assert_refused(run(tmp_path, secret=SECRET.hex()[:-2]), "--secret")


def test_a_bad_commitment_option_is_refused(tmp_path):
    assert_refused(run(tmp_path, extra=("--commitment", "xyz")), "--commitment")


def test_a_missing_column_is_refused(tmp_path):
    header = [c if c != "block_size" else "size" for c in HEADER]
    assert_refused(run(tmp_path, header=header), "no column block_size")


def test_a_number_that_is_not_one_is_refused_with_its_line(tmp_path):
    rows = long_rows(ledger())
    rows[0][HEADER.index("position")] = "first"
    assert_refused(run(tmp_path, rows=rows), "line 2", "position", "'first'")


def test_an_export_that_cannot_be_read_is_refused(tmp_path):
    result = run(tmp_path)
    (tmp_path / "unblinded.csv").write_bytes(b"stratum,block\n\xff\xfe\n")
    command = [*map(str, result.args)]
    assert_refused(subprocess.run(command, capture_output=True, text=True), "not UTF-8")
    (tmp_path / "unblinded.csv").unlink()
    assert_refused(subprocess.run(command, capture_output=True, text=True), "cannot read")


def test_a_field_over_a_megabyte_is_refused(tmp_path):
    rows = long_rows(ledger())
    rows[0][HEADER.index("notes")] = "x" * 1_000_001
    assert_refused(run(tmp_path, rows=rows), "not a CSV file that can be read")


def test_a_study_record_without_arms_is_refused(tmp_path):
    record = study_record(published=None, arms=False)
    assert "randomization" in record and "arms" not in record
    assert_refused(run(tmp_path, study=record), "no `arms`")


def test_a_study_record_without_the_design_is_refused(tmp_path):
    record = study_record(published=None, design=False)
    assert "arms" in record and "block_sizes" not in record["randomization"]
    assert_refused(run(tmp_path, study=record), "no `randomization.block_sizes`")


def test_a_study_that_allocates_from_a_table_is_out_of_scope(tmp_path):
    document = definition()
    document["randomization"] = {**document["randomization"], "method": "table"}
    assert_refused(run(tmp_path, study=document), "uploaded table", "permuted blocks only")


def test_a_study_file_that_is_not_json_is_refused(tmp_path):
    result = run(tmp_path)
    (tmp_path / "study.json").write_text("slug: peer-support\n", "utf-8")
    command = [*map(str, result.args)]
    assert_refused(subprocess.run(command, capture_output=True, text=True), "not UTF-8 JSON")


def test_the_script_parses_as_the_oldest_python_it_claims():
    ast.parse(SCRIPT.read_text("utf-8"), feature_version=(3, 9))
