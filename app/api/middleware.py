"""ASGI middleware around the whole application."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import ProblemResponse


class TooLargeAsProblem:
    """Starlette's body limit answers 413 in plain text, also in place of an answer the
    application had made; clients of this API get every error as a problem document."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_problem_instead(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                problem = ProblemResponse(
                    {
                        "type": "urn:trialdesk:problem:too-large",
                        "title": "Content Too Large",
                        "status": 413,
                        "detail": "the body is larger than this route takes",
                    },
                    status_code=413,
                )
                await problem(scope, receive, send)
                return
            if not replaced:
                await send(message)

        await self.app(scope, receive, send_problem_instead)


class NoStore:
    """`Cache-Control: no-store` on every API answer: most carry personal data (contact
    details, arms, answers), and none is worth keeping in a cache or a browser."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_no_store)
