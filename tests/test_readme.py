"""README.md's "A five-minute walkthrough", run as a newcomer runs it, so that the README
cannot drift from the product.

The section's fenced shell blocks are parsed, not copied: when the README changes, this
test runs the new commands. A block right after the HTML comment `<!-- not run -->` is
illustrative and skipped. Each block is read line by line:

- `make run` starts the server "in one terminal": the Makefile's own `run` target, in an
  empty folder of its own (its `.env`, `./trialdesk.db` and `./mail` land there), on a
  free port, with `$(BIN)/trialdesk` running this tree (nothing is installed);
- `export NAME=VALUE` sets a variable for the commands after it; a value holding `...`
  is one the README tells the reader to copy: it is filled with the latest value that
  an earlier answer showed as `...` and that fits it (`td_...` takes a token);
- `# ...` lines after a command are what it prints: every line of plain output must
  appear in that order; output that starts with `{` is the whole answer (whitespace
  aside), `...` matching anything;
- every other line is a command, run by bash in that folder; `curl` answers with an HTTP
  status below 400 unless the output shown names the status (`"status":422`).

Only the address (`http://127.0.0.1:8000`) and the copied values are substituted.
Without curl on the machine, a stand-in with httpx (tests/readme_curl.py) runs instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import live
from tests.live import PROJECT_ROOT

pytestmark = pytest.mark.slow

README = PROJECT_ROOT / "README.md"
SECTION = "## A five-minute walkthrough"
NOT_RUN = "<!-- not run -->"
SHOWN_URL = "http://127.0.0.1:8000"
STATUS = "@@http-status "
TIMEOUT_S = 120
COPYABLE = re.compile(r"[\w.:/+-]+")  # a value a reader copies: a token, a code, a link


@dataclass
class Step:
    """A command of a block, the output the README shows for it, or an `export`."""

    command: str = ""
    shown: list[str] = field(default_factory=list)
    export: tuple[str, str] | None = None


def blocks(text: str) -> list[list[str]]:
    """The lines of each shell block of the walkthrough (illustrative ones left out)."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)].splitlines()
    found: list[list[str]] = []
    for n, line in enumerate(section):
        if line.strip() in ("```bash", "```sh", "```shell") and not (
            n > 0 and section[n - 1].strip() == NOT_RUN
        ):
            found.append(section[n + 1 : section.index("```", n + 1)])
    return found


def steps(lines: list[str]) -> list[Step]:
    """A block's commands (continued lines and quoted newlines kept together), each with
    the output shown below it, and its exports."""
    parsed: list[Step] = []
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            assert parsed and parsed[-1].command, f"output shown before any command: {line}"
            parsed[-1].shown.append(stripped.removeprefix("#").strip())
        elif stripped.startswith("export "):
            name, value = stripped.removeprefix("export ").split("#")[0].strip().split("=", 1)
            parsed.append(Step(export=(name, value)))
        elif parsed and parsed[-1].command and not parsed[-1].shown:
            parsed[-1].command += "\n" + line.split("  # ")[0]
        else:
            parsed.append(Step(command=line.split("  # ")[0]))
    return parsed


def _pattern(shown: str) -> re.Pattern[str]:
    """The shown output as a pattern: `...` matches anything (and is kept, to copy)."""
    return re.compile("(.*?)".join(re.escape(part) for part in shown.split("...")), re.DOTALL)


class Walkthrough:
    """A newcomer's terminal: a folder, the variables exported so far, what was shown."""

    def __init__(self, folder: Path, bin_dir: Path, url: str) -> None:
        self.folder = folder
        self.bin_dir = bin_dir
        self.url = url
        self.variables: dict[str, str] = {}
        # The values shown as `...` (with the text before and after them), oldest first.
        self.copyable: list[tuple[str, str, str]] = []

    def env(self) -> dict[str, str]:
        """The user's environment: no TRIALDESK_ setting but where state and keys go (the
        test's temporary folders), so that `.env` and the defaults are what is used."""
        kept = {k: v for k, v in os.environ.items() if not k.startswith("TRIALDESK_")}
        return {
            **kept,
            "PATH": f"{self.bin_dir}:{kept.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": str(PROJECT_ROOT),
            "TRIALDESK_STATE_DIR": os.environ["TRIALDESK_STATE_DIR"],
            **self.variables,
        }

    def here(self, text: str) -> str:
        return text.replace(SHOWN_URL, self.url)

    def export(self, name: str, value: str) -> None:
        value = self.here(value)
        if "..." in value:
            before, after = value.split("...", 1)
            fits = [
                f"{before}{copied}{after}"
                for shown_before, copied, shown_after in reversed(self.copyable)
                if COPYABLE.fullmatch(copied)
                and shown_before.endswith(before)
                and shown_after.startswith(after)
            ]
            assert fits, f"export {name}={value}: no answer showed such a value to copy"
            value = fits[0]
        self.variables[name] = value

    def keep(self, shown: str, found: re.Match[str]) -> None:
        """Keep each value shown as `...`, with the text the README shows around it."""
        parts = shown.split("...")
        self.copyable.extend(
            (parts[n], copied, parts[n + 1]) for n, copied in enumerate(found.groups())
        )

    def check(self, command: str, output: str, shown: list[str]) -> None:
        """The output is what the README shows; keep the values it shows as `...`."""
        if not shown:
            return
        shown = [self.here(line) for line in shown]
        if shown[0].startswith(("{", "[")):
            expected, actual = "".join(shown), output.strip()
            compact = re.sub(r"\s", "", expected)
            found = _pattern(compact).fullmatch(re.sub(r"\s", "", actual))
            assert found, f"{command}\nprinted:\n{actual}\nthe README shows:\n{expected}"
            self.keep(compact, found)
            return
        lines = [" ".join(line.split()) for line in output.splitlines()]
        for expected in shown:
            pattern = _pattern(" ".join(expected.split()))
            at = next((n for n, line in enumerate(lines) if pattern.fullmatch(line)), None)
            assert at is not None, f"{command}\nprinted:\n{output}\nnot: {expected}"
            found = pattern.fullmatch(lines[at])
            assert found is not None
            self.keep(" ".join(expected.split()), found)
            lines = lines[at + 1 :]

    def run(self, step: Step) -> None:
        command = self.here(step.command).replace(".venv/bin/", f"{self.bin_dir}/")
        script = f"curl() {{ command curl -w '\\n{STATUS}%{{http_code}}\\n' \"$@\"; }}\n{command}"
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.folder,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"{command}\nfailed ({done.returncode}):\n{done.stderr}"
        answers = done.stdout.split(STATUS)
        statuses = [int(part.split("\n", 1)[0]) for part in answers[1:]]
        output = "".join(part.split("\n", 1)[-1] if n else part for n, part in enumerate(answers))
        shown_status = re.search(r'"status":(\d{3})', "".join(step.shown))
        for status in statuses:
            allowed = shown_status is not None and int(shown_status.group(1)) == status
            assert status < 400 or allowed, f"{command}\nanswered {status}:\n{output}"
        self.check(command, output + done.stderr, step.shown)


def _bin_dir(folder: Path) -> Path:
    """What `$(BIN)` holds for `make run` (the `trialdesk` of this tree), and curl's
    stand-in where curl is missing."""
    folder.mkdir()
    trialdesk = folder / "trialdesk"
    trialdesk.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m app.cli "$@"\n')
    trialdesk.chmod(0o755)
    if shutil.which("curl") is None:
        curl = folder / "curl"
        curl.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.readme_curl "$@"\n')
        curl.chmod(0o755)
    return folder


def _make_run(walk: Walkthrough, command: str, port: int) -> list[str]:
    """`make run` as the Makefile runs it, on this port, installing nothing."""
    assert command.strip() == "make run", f"the server's block runs {command!r}"
    return [
        *("make", "--no-print-directory", "-f", str(PROJECT_ROOT / "Makefile")),
        *("-o", ".venv/.installed-run", "run"),
        *(f"BIN={walk.bin_dir}", "HOST=127.0.0.1", f"PORT={port}"),
    ]


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    port = live.free_port()
    folder = tmp_path / "newcomer"
    folder.mkdir()
    walk = Walkthrough(folder, _bin_dir(tmp_path / "bin"), f"http://127.0.0.1:{port}")
    parsed = [steps(block) for block in blocks(README.read_text())]
    assert parsed and parsed[0] and parsed[0][0].command.strip() == "make run", (
        "the walkthrough starts the server with `make run`"
    )
    server_step, first = parsed[0][0], parsed[0][1:]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            _make_run(walk, server_step.command, port),
            cwd=folder,
            env=walk.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the server it starts: one group to stop
        )
        try:
            live._wait_until_up(server, walk.url, log)
            log.seek(0)
            printed = log.read().decode(errors="replace")
            walk.check("make run", printed, server_step.shown)
            assert (folder / ".env").read_text().splitlines().count(
                f"TRIALDESK_BASE_URL={walk.url}"
            ) == 1
            _check_sign_in_link(walk, printed)
            for step in [*first, *(s for block in parsed[1:] for s in block)]:
                if step.export:
                    walk.export(*step.export)
                else:
                    walk.run(step)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=live.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=live.STOP_TIMEOUT_S)


def _check_sign_in_link(walk: Walkthrough, printed: str) -> None:
    """The link `make run` prints, and one from `trialdesk users sign-in-link` run beside
    the server, are on the server's address and open the sign-in page."""
    done = subprocess.run(
        ["trialdesk", "users", "sign-in-link", "admin@demo.trialdesk.org"],
        cwd=walk.folder,
        env=walk.env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    links = re.findall(rf"{re.escape(walk.url)}/console/sign-in/[\w-]+", printed)
    assert len(links) == 1, f"make run printed no sign-in link on {walk.url}:\n{printed}"
    cli = done.stdout.strip().splitlines()[-1]
    assert cli.startswith(f"{walk.url}/console/sign-in/"), cli
    for link in (links[0], cli):
        page = httpx.get(link, timeout=30)
        assert page.status_code == 200, page.text
        assert "<h1>Sign in to Trialdesk</h1>" in page.text
        assert 'type="submit"' in page.text
