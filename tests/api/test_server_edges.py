"""The server as `trialdesk serve` runs it, seen from the network: proxy headers believed
only from the proxies configured, half-sent requests closed after a bounded time, and a
client that goes away logged as 499, not as a 500 with a traceback."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.demo import load_demo
from tests.helpers import STUDY, bearer, enrollment
from tests.live import running_servers

ME = "/api/v1/users/me"
BAD_TOKENS = 3  # per minute and address, for these servers
CLOSE_WITHIN_S = 20.0  # the longest a test waits for the server to close a connection


def _env(settings, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {
        "TRIALDESK_DATABASE_URL": settings.database_url,
        "TRIALDESK_BAD_TOKENS_PER_MINUTE": str(BAD_TOKENS),
        **extra,
    }
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return env


@pytest.fixture
def token(db) -> str:  # type: ignore[no-untyped-def]
    with db.begin() as session:
        return load_demo(session).token


def _statuses(url: str, forwarded_for: list[str], token: str) -> list[int]:
    """The status of a request with a bad token from each (claimed) address in turn."""
    with httpx.Client(base_url=url, timeout=30) as client:
        return [
            client.get(ME, headers={**bearer(f"td_bad{n}"), "X-Forwarded-For": address}).status_code
            for n, address in enumerate(forwarded_for)
        ]


def test_by_default_no_proxy_header_is_believed(settings, token):
    """Without --forwarded-allow-ips, X-Forwarded-For is ignored: a guesser cannot pose as
    many addresses to get around the limit (the request comes from 127.0.0.1, the address
    uvicorn would trust by default)."""
    with running_servers(_env(settings), serve=[]) as (url,):
        posing = [f"203.0.113.{n}" for n in range(BAD_TOKENS + 1)]
        assert _statuses(url, posing, token) == [401] * BAD_TOKENS + [429]
        # ...and a valid token from that address is not refused for the guesser's sake.
        assert httpx.get(f"{url}{ME}", headers=bearer(token), timeout=30).status_code == 200
        # /metrics is this host's: not for what a proxy on this host forwards.
        assert httpx.get(f"{url}/metrics", timeout=30).status_code == 200
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        assert httpx.get(f"{url}/metrics", headers=forwarded, timeout=30).status_code == 404


@pytest.mark.parametrize("how", ["option", "setting"])
def test_proxy_headers_are_believed_from_the_configured_proxies(settings, token, how):
    env = _env(settings)
    options = ["--forwarded-allow-ips", "127.0.0.1"]
    if how == "setting":
        env["TRIALDESK_FORWARDED_ALLOW_IPS"] = "127.0.0.0/8"
        options = []
    with running_servers(env, serve=options) as (url,):
        many = [f"203.0.113.{n}" for n in range(BAD_TOKENS + 1)]
        assert _statuses(url, many, token) == [401] * (BAD_TOKENS + 1)  # one failure each
        one = ["198.51.100.7"] * (BAD_TOKENS + 1)
        assert _statuses(url, one, token) == [401] * BAD_TOKENS + [429]
        # The clients behind the proxy are told apart: another one is not slowed down.
        assert _statuses(url, ["198.51.100.8"], token) == [401]
        valid = httpx.get(
            f"{url}{ME}",
            headers={**bearer(token), "X-Forwarded-For": "198.51.100.7"},
            timeout=30,
        )
        assert valid.status_code == 200


def test_serve_refuses_a_proxy_address_that_is_not_one(settings):
    from tests.test_cli import trialdesk

    refused = trialdesk(settings, "serve", "--forwarded-allow-ips", "not-an-address")
    assert refused.returncode == 1
    assert "--forwarded-allow-ips" in refused.stderr


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=CLOSE_WITHIN_S)
    return sock


def _until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and when it closed it;
    fails if it does not within CLOSE_WITHIN_S (the socket's timeout)."""
    received = b""
    while True:
        chunk = sock.recv(65536)  # blocks until data, the server's close, or the timeout
        if not chunk:
            return received, time.monotonic()
        received += chunk


HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _half_body(token: str) -> bytes:
    return (
        f"POST /api/v1/studies/{STUDY}/participants HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 5000\r\n\r\n"
    ).encode() + json.dumps(enrollment())[:100].encode()


@contextmanager
def _timed_server(settings, log: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    env = _env(
        settings,
        TRIALDESK_HEADER_TIMEOUT_S="1",
        TRIALDESK_BODY_TIMEOUT_S="2",
        TRIALDESK_LOG_LEVEL="INFO",
    )
    with running_servers(env, serve=[], log=log) as (url,):
        yield url


@pytest.mark.parametrize(
    "sent",
    [b"", HALF_HEAD, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HT"],
    ids=["nothing", "half a head", "half a second head"],
)
def test_a_request_head_that_never_ends_is_closed(settings, tmp_path, sent):
    with _timed_server(settings, tmp_path / "server.log") as url:
        with closing(_connect(url)) as sock:
            started = time.monotonic()
            sock.sendall(sent)
            received, closed_at = _until_closed(sock)
        assert closed_at - started >= 0.9  # the deadline, not a refusal at once
        if sent.count(b"GET") == 2:  # the complete first request was answered
            assert received.startswith(b"HTTP/1.1 200")
        else:
            assert received == b""
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_a_body_that_never_comes_is_closed_and_the_request_logged_as_499(settings, token, tmp_path):
    log = tmp_path / "server.log"
    with _timed_server(settings, log) as url:
        with closing(_connect(url)) as sock:
            started = time.monotonic()
            sock.sendall(_half_body(token))
            _, closed_at = _until_closed(sock)
        assert closed_at - started >= 1.9
        line = _wait_for_request_line(log, "/participants")
    assert line["status"] == 499
    text = log.read_text()
    assert "Traceback" not in text and '"status": 500' not in text


def test_many_half_sent_requests_do_not_hold_the_server(settings, token, tmp_path):
    with _timed_server(settings, tmp_path / "server.log") as url:
        socks = [_connect(url) for _ in range(100)]
        try:
            for n, sock in enumerate(socks):
                sock.sendall(HALF_HEAD if n % 2 else _half_body(token))
            # The server answers others meanwhile...
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            # ...and closes every one of the half-sent requests.
            for sock in socks:
                _until_closed(sock)
        finally:
            for sock in socks:
                sock.close()


def test_a_client_that_goes_away_mid_body_is_logged_as_499_without_a_traceback(
    settings, token, tmp_path
):
    log = tmp_path / "server.log"
    with _timed_server(settings, log) as url:
        sock = _connect(url)
        sock.sendall(_half_body(token))
        sock.close()  # gone before its body was sent
        line = _wait_for_request_line(log, "/participants")
    assert line["status"] == 499
    text = log.read_text()
    assert "Traceback" not in text and '"status": 500' not in text


def _wait_for_request_line(log: Path, path_end: str) -> dict[str, object]:
    """The server's log line of the request to a path ending so, once it is written
    (bounded: the request ends when the server sees the client gone)."""
    deadline = time.monotonic() + CLOSE_WITHIN_S
    while time.monotonic() < deadline:
        for text in log.read_text().splitlines():
            if text.startswith("{"):
                line = json.loads(text)
                if line.get("message") == "request" and str(line.get("path")).endswith(path_end):
                    return line  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no request line in the log: {log.read_text()[-2000:]}")
