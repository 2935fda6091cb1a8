"""A local HTTP server that speaks Twilio's Messages API, for tests and benchmarks.

It takes `POST /2010-04-01/Accounts/{sid}/Messages.json` (form From/To/Body/
StatusCallback, basic auth) and answers as Twilio does (201 with `sid` and `status`;
a 400 with Twilio's error code for a number it refuses; a 500 when told to fail). It
records what it was sent, and calls Trialdesk's webhooks as Twilio would: the status
callback at the address each text named, the inbound webhook with a participant's text,
each signed with the account's auth token over the address it was given.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import httpx

from app.texting.signature import twilio_signature
from tests.live import free_port

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "test-auth-token-0123456789abcdef"
SENDER = "+12155550000"


@dataclass
class Sent:
    sid: str
    to: str
    body: str
    callback: str
    sender: str


@dataclass
class FakeTwilio:
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # number → next N sends: 500
    refused: set[str] = field(default_factory=set)  # numbers answered 400, code 21211
    bad_auth: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def to(self, number: str) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if s.to == number]

    def answer(self, path: str, auth: str | None, form: dict[str, str]) -> tuple[int, dict]:
        if path != f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json":
            return 404, {"code": 20404, "message": "not found", "status": 404}
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if auth != expected:
            with self.lock:
                self.bad_auth += 1
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        with self.lock:
            if self.failures.get(form.get("To", ""), 0) > 0:
                self.failures[form["To"]] -= 1
                return 500, {"code": 20500, "message": "Internal Server Error", "status": 500}
            if form.get("To") in self.refused:
                return 400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}
            sid = f"SM{next(self._ids):032x}"
            self.sent.append(
                Sent(sid, form["To"], form["Body"], form["StatusCallback"], form.get("From", ""))
            )
        return 201, {"sid": sid, "status": "queued", "to": form["To"]}


def signed_post(
    target: str, url: str, form: dict[str, str], *, token: str = TOKEN
) -> httpx.Response:
    """POST `form` to Trialdesk at `target` (its real address) as Twilio would to `url`
    (the address Twilio was given, which the signature covers)."""
    signature = twilio_signature(url, form.items(), token=token)
    path = urlsplit(url).path
    return httpx.post(
        target + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=30
    )


def deliver(target: str, text: Sent, status: str) -> httpx.Response:
    """Twilio's status callback for a text: to the address the text named."""
    form = {"MessageSid": text.sid, "MessageStatus": status, "AccountSid": ACCOUNT}
    return signed_post(target, text.callback, form)


@contextmanager
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Twilio's API
        disable_nagle_algorithm = True  # headers and body go in two writes

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            status, answer = fake.answer(self.path, self.headers.get("Authorization"), form)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
