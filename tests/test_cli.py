"""The `trialdesk` command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from app.demo import demo_definition
from tests.live import PROJECT_ROOT


def trialdesk(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TRIALDESK_DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"}
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
