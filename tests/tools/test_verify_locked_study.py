"""The third-party check on a real locked study: the admin's study record, the revealed
secret and the unblinded export, as a DMC would download them from the API."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import STUDY, bearer

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "verify_allocations.py"
BASE = f"/api/v1/studies/{STUDY}"


def _verify(
    tmp_path: Path, *, secret: str, record: dict, export: str
) -> subprocess.CompletedProcess:
    (tmp_path / "study.json").write_text(json.dumps(record))
    (tmp_path / "unblinded.csv").write_text(export, encoding="utf-8")
    files = ["--study", str(tmp_path / "study.json"), "--export", str(tmp_path / "unblinded.csv")]
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "--secret", secret, *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_allocation_of_a_locked_study_checks_out_and_a_tampered_export_does_not(
    api, tmp_path
):
    admin = api.admin_token
    for n in range(14):
        code = api.enroll(
            admin, site=("PHL", "PIT")[n % 2], diagnosis=("bipolar", "depressive")[n // 2 % 2]
        )
        assert api.randomize(admin, code).status_code == 200
    locked = api.client.post(f"{BASE}/lock", headers=bearer(admin))
    assert locked.status_code == 200, locked.text
    secret = locked.json()["secret"]
    record = api.client.get(BASE, headers=bearer(admin)).json()
    assert record["randomization"]["block_sizes"] == [3, 6]  # the admin sees the design
    export = api.client.get(
        f"{BASE}/exports/unblinded", params={"reason": "check the lock"}, headers=bearer(admin)
    ).text

    honest = _verify(tmp_path, secret=secret, record=record, export=export)
    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert "ok: 14 allocations in 4 strata re-derived; commitment matches" in honest.stdout

    rows = list(csv.DictReader(io.StringIO(export)))
    victim = rows[0]
    other = next(a for a in ("listserv", "bulletin_board", "control") if a != victim["arm"])
    for row in rows:  # the long shape repeats the allocation on every timepoint's row
        if row["pseudonym"] == victim["pseudonym"]:
            row["arm"] = other
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    tampered = _verify(tmp_path, secret=secret, record=record, export=out.getvalue())
    assert tampered.returncode == 1
    expected = (
        f"MISMATCH stratum={victim['stratum']} block={victim['block']} "
        f"position={victim['position']}: export says {other}"
    )
    assert expected in tampered.stdout, tampered.stdout
