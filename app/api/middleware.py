"""The one ASGI middleware around the application: what every request passes on its way
in and out. Plain ASGI, one wrapper of `send`: each layer of middleware costs every
request, and `BaseHTTPMiddleware` a task and a stream more."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import CLIENT_CLOSED_REQUEST, ProblemResponse
from app.logging import request_id
from app.metrics import LATENCY, REQUESTS

REQUEST_ID_HEADER = "x-request-id"
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOO_LARGE = {
    "type": "urn:trialdesk:problem:too-large",
    "title": "Content Too Large",
    "status": 413,
    "detail": "the body is larger than this route takes",
}

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


class HttpEdge:
    """For every HTTP request:

    - an id: the client's `X-Request-ID` when it is a plain token of at most 64
      characters, else a new one; answered in the same header, and carried by every
      log line and audit record written while the request is served;
    - one log line and the request metrics (by route template, never by raw path); a
      request whose client went away before the last byte of its answer counts as 499
      (nginx's "client closed request"), whatever the application answered;
    - `Cache-Control: no-store` on API and console answers (most carry personal data;
      the console's downloads all do), unless the answer set its own;
    - Starlette's body limit answers 413 in plain text (also in place of an answer the
      application had made): clients of this API get a problem document instead.
    """

    def __init__(
        self, app: ASGIApp, too_large_page: Callable[[Scope], Response | None] | None = None
    ) -> None:
        self.app = app
        self.log = logging.getLogger("trialdesk.http")
        # A page to answer a body too large with, where the path is a page's (a survey's):
        # the person who typed the answers gets a page, not a problem document.
        self.too_large_page = too_large_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent_id = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        rid = sent_id if _GOOD_REQUEST_ID.match(sent_id) else uuid.uuid4().hex
        token = request_id.set(rid)
        api = scope["path"].startswith("/api/")
        personal = api or scope["path"] == "/console" or scope["path"].startswith("/console/")
        started = time.perf_counter()
        status = 500
        replaced = False
        answered = False  # the last byte of the answer was sent
        gone = False  # the client went away before it

        async def receive_watched() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect" and not answered:
                gone = True
            return message

        async def send_framed(message: Message) -> None:
            nonlocal status, replaced, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 413:  # Starlette's own is plain text
                    replaced = True
                    page = self.too_large_page(scope) if self.too_large_page else None
                    answer = page or ProblemResponse(_TOO_LARGE, status_code=413)
                    answer.headers[REQUEST_ID_HEADER] = rid
                    await answer(scope, receive, send)
                    return
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = rid
                if personal:
                    headers.setdefault("cache-control", "no-store")
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                answered = True
            if not replaced:
                await send(message)

        try:
            await self.app(scope, receive_watched, send_framed)
        finally:
            elapsed = time.perf_counter() - started
            if gone and not answered:
                status = CLIENT_CLOSED_REQUEST  # not the 500 or 200 of an answer no one read
            route = getattr(scope.get("route"), "path_format", None) or "unmatched"
            # Any word is a method to HTTP: a label per made-up one would let anyone grow
            # /metrics (and memory) without bound.
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            if self.log.isEnabledFor(logging.INFO):
                self.log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": _without_secrets(scope),
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    },
                )
            request_id.reset(token)


# Where a personal link's token sits in a path: a survey's, a sign-up's, a re-consent
# invitation's. Hidden whether or not a route matched (`/s/<token>/`,
# `/join/a/<token>/nonsense` are secrets in a log as well).
_TOKEN_IN_PATH = re.compile(r"^(/s/|/api/v1/surveys/|/join/a/|/consent/)[^/]+")


def _without_secrets(scope: Scope) -> str:
    """The path, with a personal link's token (a secret) shown as `…`."""
    path: str = scope["path"]
    token = scope.get("path_params", {}).get("token")
    if isinstance(token, str) and token:
        path = path.replace(token, "…")
    return _TOKEN_IN_PATH.sub(r"\1…", path)
