"""Real servers for tests and benchmarks: uvicorn subprocesses on loopback ports."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class ServerFailed(RuntimeError):
    """A server did not start, or exited."""


# Ports are handed out below the kernel's ephemeral range (32768 and up on Linux, where
# outgoing connections take theirs), each pytest-xdist worker in a range of its own and
# in turn, so that two servers (of two test processes, or a server and the one started
# just before it, not yet listening) are never given the same port.
PORTS_PER_PROCESS = 1500
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_first_port = 20000 + (int(_worker) % 8 if _worker.isdigit() else 0) * PORTS_PER_PROCESS
_start = random.randrange(PORTS_PER_PROCESS)
_next_ports = itertools.cycle(
    _first_port + (_start + k) % PORTS_PER_PROCESS for k in range(PORTS_PER_PROCESS)
)


def free_port() -> int:
    """A loopback port nobody listens on, not handed out by this process before."""
    for _ in range(PORTS_PER_PROCESS):
        port = next(_next_ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerFailed("no free loopback port")


class Server:
    """One uvicorn process of the app factory, on a loopback port."""

    def __init__(
        self,
        env: Mapping[str, str],
        app: str,
        output: IO[bytes],
        serve: Sequence[str] | None = None,
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.output = output
        self.process = subprocess.Popen(
            _uvicorn(app, port) if serve is None else _serve(port, serve),
            cwd=PROJECT_ROOT,
            # No scheduler unless a test asks for one: its emails are not what most test.
            env={
                "TRIALDESK_LOG_LEVEL": "WARNING",
                "TRIALDESK_SCHEDULER": "false",
                **os.environ,
                **env,
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=output,
            start_new_session=True,  # Ctrl-C reaches us; we stop it ourselves
        )

    def wait_until_up(self) -> None:
        _wait_until_up(self.process, self.url, self.output)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-request, as in a crash."""
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        stop(self.process)


@contextlib.contextmanager
def running_servers(
    env: Mapping[str, str],
    count: int = 1,
    app: str = "app.main:create_app",
    log: Path | None = None,
    serve: Sequence[str] | None = None,
) -> Iterator[list[str]]:
    """Start `count` uvicorn processes of the app factory; yield their base URLs; stop them
    (also on error or Ctrl-C). Their output goes to `log` when given, else to a temporary
    file, kept for the error message of a server that fails to start (a pipe nobody reads
    would stall a server that logs a lot). With `serve` (its options, maybe none), each
    is started as production starts it, by `trialdesk serve`, instead of plain uvicorn."""
    with running_server_processes(env, count, app, log, serve) as servers:
        yield [server.url for server in servers]


@contextlib.contextmanager
def running_server_processes(
    env: Mapping[str, str],
    count: int = 1,
    app: str = "app.main:create_app",
    log: Path | None = None,
    serve: Sequence[str] | None = None,
) -> Iterator[list[Server]]:
    """As `running_servers`, yielding the servers themselves (to kill one, say)."""
    servers: list[Server] = []
    with contextlib.ExitStack() as stack:
        opened = log.open("a+b") if log else tempfile.TemporaryFile()  # noqa: SIM115
        output = stack.enter_context(opened)
        try:
            servers.extend(Server(env, app, output, serve) for _ in range(count))
            for server in servers:
                server.wait_until_up()
            yield servers
        finally:
            for server in servers:
                server.stop()


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", app, "--factory"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "warning", "--no-access-log"),
        # Longer than httpx keeps an idle connection (5 s, uvicorn's default too): with
        # equal timeouts a client may reuse a connection at the instant the server closes
        # it, and the request fails with "Server disconnected without sending a response".
        *("--timeout-keep-alive", "30"),
    ]


def _serve(port: int, options: Sequence[str]) -> list[str]:
    return [
        *(sys.executable, "-m", "app.cli", "serve", "--no-scheduler"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *options,
    ]


def _wait_until_up(process: subprocess.Popen[bytes], url: str, output: IO[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"server exited with {process.returncode}: {_tail(output)}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServerFailed(f"server at {url} did not come up in {START_TIMEOUT_S:.0f} s")


def _tail(output: IO[bytes]) -> str:
    output.flush()
    output.seek(0)
    return output.read().decode(errors="replace")[-3000:]


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the process, or kill it if it does not stop in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
