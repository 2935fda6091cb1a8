"""The built wheel carries every file the application reads: package data comes from one
glob, so a new template or static folder cannot be left out of it again.

The wheel is built (as `pip wheel` builds it) from a copy of the files git tracks, plus
a file in a folder no rule names and some byte code that must stay out. `.ci/wheel-smoke`
installs a wheel and runs it; this test says what must be in one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Folders of the source tree → where their files go in the wheel (setup.py).
PACKAGES = {"app": "app", "migrations": "trialdesk_migrations"}
NEW_FOLDER_FILE = "app/web/a_folder_no_rule_names/new.txt"
BYTE_CODE = "app/web/__pycache__/pages.cpython-311.pyc"
BUILD_TIMEOUT_S = 240


def _tracked_files() -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "-z", "--", *PACKAGES, "setup.py", "pyproject.toml", "README.md"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    )
    files = [name for name in done.stdout.decode().split("\0") if name]
    assert any(name.endswith(".html") for name in files), "git lists no templates"
    return files


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    return _tracked_files()


@pytest.fixture(scope="module")
def wheel(tracked: list[str], tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names in a wheel built from the tracked files, one new file and byte code."""
    source = tmp_path_factory.mktemp("source")
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for name in (NEW_FOLDER_FILE, BYTE_CODE):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"added by tests/test_packaging.py\n")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        cwd=dist,
        capture_output=True,
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    (built,) = dist.glob("trialdesk-*.whl")
    with zipfile.ZipFile(built) as archive:
        return set(archive.namelist())


def _in_wheel(name: str) -> str:
    top, _, rest = name.partition("/")
    return f"{PACKAGES[top]}/{rest}"


def test_every_file_of_app_and_migrations_is_in_the_wheel(tracked, wheel):
    missing = sorted(
        name for name in tracked if name.split("/")[0] in PACKAGES and _in_wheel(name) not in wheel
    )
    assert not missing, f"not in the wheel: {missing}"


def test_a_file_in_a_new_folder_is_in_the_wheel_without_a_new_rule(wheel):
    assert _in_wheel(NEW_FOLDER_FILE) in wheel


def test_the_wheel_holds_the_packages_and_nothing_else(wheel):
    assert _in_wheel(BYTE_CODE) not in wheel
    assert not [name for name in wheel if "__pycache__" in name or name.endswith(".pyc")]
    tops = {name.split("/")[0] for name in wheel}
    assert tops == {"app", "trialdesk_migrations", "trialdesk-0.1.0.dist-info"}


def test_what_the_app_reads_at_run_time_is_in_the_wheel(wheel):
    for name in (
        "app/console/templates/console/sign_in.html",
        "app/surveys/templates/survey/part.html",
        "app/web/templates/base.html",
        "app/web/static/trialdesk.css",
        "app/studies/demo/peer-support.yaml",
        "trialdesk_migrations/env.py",
        "trialdesk_migrations/script.py.mako",
        "trialdesk_migrations/frozen/keys_20261130.py",
    ):
        assert name in wheel, name
    revisions = [name for name in wheel if name.startswith("trialdesk_migrations/versions/")]
    assert len(revisions) == len(list((ROOT / "migrations" / "versions").glob("*.py")))


def test_package_data_is_one_glob():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-data"] == {"*": ["**/*"]}
