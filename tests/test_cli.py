"""The `trialdesk` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from frictionless import validate

from app.demo import demo_definition
from tests.helpers import bearer
from tests.live import PROJECT_ROOT


def trialdesk(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "TRIALDESK_DATABASE_URL": settings.database_url,
        "PATH": "/usr/bin:/bin",
        "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"],  # the key files of tests/conftest.py
    }
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_then_users_create_prints_the_token_alone_on_the_last_line(settings):
    demo = trialdesk(settings, "demo")
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.strip().splitlines()[-1].startswith("td_")
    created = trialdesk(
        settings,
        "users",
        "create",
        "--email",
        "c@example.org",
        "--role",
        "coordinator",
        "--site",
        "peer-support:PHL",
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("td_") and " " not in token
    again = trialdesk(settings, "demo")  # loading twice is harmless
    assert again.returncode == 0, again.stderr


def test_users_create_refuses_an_unknown_site(settings):
    trialdesk(settings, "demo")
    result = trialdesk(
        settings,
        "users",
        "create",
        "--email",
        "x@example.org",
        "--role",
        "coordinator",
        "--site",
        "peer-support:NOPE",
    )
    assert result.returncode == 1
    assert "sites.0.site" in result.stderr


def test_studies_create_loads_yaml_and_json_and_reports_errors_by_path(settings, tmp_path):
    yaml_file = tmp_path / "study.yaml"
    yaml_file.write_text(yaml.safe_dump(demo_definition() | {"slug": "from-yaml"}))
    result = trialdesk(settings, "studies", "create", str(yaml_file))
    assert result.returncode == 0, result.stderr
    assert "from-yaml: draft" in result.stdout
    json_file = tmp_path / "study.json"
    json_file.write_text(json.dumps(demo_definition() | {"slug": "from-json"}))
    result = trialdesk(settings, "studies", "create", str(json_file), "--activate")
    assert result.returncode == 0, result.stderr
    assert "from-json: enrolling" in result.stdout and "commitment" in result.stdout
    bad = demo_definition() | {"slug": "bad"}
    bad["randomization"]["block_sizes"] = [3, 5]
    yaml_file.write_text(yaml.safe_dump(bad))
    result = trialdesk(settings, "studies", "create", str(yaml_file))
    assert result.returncode == 1
    assert "randomization.block_sizes.1" in result.stderr


def test_db_upgrade_is_idempotent(settings):
    result = trialdesk(settings, "db", "upgrade")
    assert result.returncode == 0, result.stderr


def test_serve_refuses_to_start_on_postgresql_without_a_server_key():
    result = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port", "1"],
        cwd=PROJECT_ROOT,
        env={
            "TRIALDESK_DATABASE_URL": "postgresql://nobody@127.0.0.1/none",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "TRIALDESK_SECRET_KEY" in result.stderr


EXTS = ("csv", "dta", "sav")
TABLES = ("blinded_long", "blinded_wide", "participants", "adverse_events", "deviations")


def test_export_writes_the_blinded_data_package_into_a_new_directory_and_is_audited(
    settings, api, tmp_path
):
    for n in range(3):
        code = api.enroll(api.admin_token, site=("PHL", "PIT")[n % 2])
        assert api.randomize(api.admin_token, code).status_code == 200
    out = tmp_path / "package"
    done = trialdesk(settings, "export", "--study", "peer-support", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out / "datapackage.json")
    # Rows of the CSV files: long (3 x 3), wide (3) and participants (3).
    assert "3 participants (15 rows) written" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            *(f"{t}.{e}" for t in TABLES for e in EXTS),
            "codebook_long.csv",
            "codebook_wide.csv",
            "codebook_participants.csv",
            "codebook_adverse_events.csv",
            "codebook_deviations.csv",
            "datapackage.json",
            "peer-support.R",
        ]
    )
    assert len((out / "blinded_long.csv").read_text().splitlines()) == 1 + 3 * 3
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in out.iterdir())
    assert validate(str(out / "datapackage.json")).valid
    again = trialdesk(settings, "export", "--study", "peer-support", "--out", str(out))
    assert again.returncode == 1 and "not an empty directory" in again.stderr
    audit = api.client.get(
        "/api/v1/studies/peer-support/audit",
        params={"limit": 1000},
        headers=bearer(api.admin_token),
    ).json()["items"]
    started = [r for r in audit if r["action"] == "export.started"]
    completed = [r for r in audit if r["action"] == "export.completed"]
    assert len(started) == len(completed) == 1  # the refused second run audits nothing
    assert completed[0]["changes"]["export"] == started[0]["changes"]["export"]
    assert completed[0]["changes"]["rows"]["new"] == 15 and completed[0]["actor"] == "system"
