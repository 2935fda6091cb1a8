"""ASGI middleware every request passes: the NUL filter and the request slots.

Plain ASGI rather than `BaseHTTPMiddleware`, which costs a task and a stream per request.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import PROBLEM_MEDIA_TYPE


class RefuseNul:
    """Refuse NUL characters in the path, the query or the body (422).

    PostgreSQL cannot store NUL in text, so it is refused at the door for both backends.
    The body is read whole here, before the request takes a slot (see `RequestSlots`),
    so a slow client never holds one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        target = scope["path"].encode() + b"?" + scope.get("query_string", b"")
        if b"\x00" in target or b"\x00" in body or b"\\u0000" in body:
            await _problem(send, 422, "NUL characters are not accepted")
            return
        await self.app(scope, _replay(body, receive), send)


class RequestSlots:
    """At most `slots` requests at once in this process; the others wait their turn.

    Requests waiting for a lock each block a worker thread; keeping them fewer than the
    thread pool leaves threads for the other steps of every request, and keeps within
    the connection pool.
    """

    def __init__(self, app: ASGIApp, *, slots: int) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(slots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self.slots:
            await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps(
        {
            "type": "urn:trialdesk:problem:invalid-input",
            "title": "Invalid input",
            "status": status,
            "detail": detail,
            "errors": [{"loc": ["request"], "msg": detail}],
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
