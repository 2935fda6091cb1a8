"""The HTTP server `trialdesk serve` runs: uvicorn, with proxy headers trusted only from
the addresses configured, and deadlines for a request's head and body.

uvicorn itself closes a connection only when it sits idle between two requests
(`timeout_keep_alive`); a client that opens a connection and sends half a request head, or
a head promising a body it never sends, holds the connection (and, for a body, the
request's task) for ever: a few hundred of those (slowloris) hold the server. Here:

- the request head must be complete within `header_timeout_s` of its first byte (of the
  connection's opening, for the first request);
- the body must be complete within `body_timeout_s` of the head.

Past either, the connection is closed; an application still reading the body gets
`http.disconnect` (logged as 499). A reverse proxy in front (docs/operations.md) should
enforce its own, shorter limits as well.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Settings

log = logging.getLogger("trialdesk.http")


@cache
def _deadlines() -> tuple[float, float]:
    """(head, body) seconds, read once per process from the settings."""
    settings = Settings()
    return settings.header_timeout_s, settings.body_timeout_s


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head or body does not
    arrive in time."""

    head_timer: asyncio.TimerHandle | None = None
    body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A new connection owes a request head from its first instant.
        self.head_timer = self._arm(_deadlines()[0], "request head")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head()
        self._cancel_body()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arm or cancel the deadlines for where the request now is."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.head_timer is None and self.conn.trailing_data[0]:
                self.head_timer = self._arm(_deadlines()[0], "request head")
        else:
            self._cancel_head()
        if state is h11.SEND_BODY:
            if self.body_timer is None:
                self.body_timer = self._arm(_deadlines()[1], "request body")
        else:
            self._cancel_body()

    def _arm(self, seconds: float, what: str) -> asyncio.TimerHandle:
        return self.loop.call_later(seconds, self._expired, what, seconds)

    def _expired(self, what: str, seconds: float) -> None:
        self.head_timer = self.body_timer = None
        if self.transport.is_closing():
            return
        client = "%s:%d" % self.client if self.client else "?"  # noqa: UP031 - as uvicorn
        log.info("closed the connection of %s: no complete %s within %g s", client, what, seconds)
        self.transport.close()

    def _cancel_head(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _cancel_body(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None


def run(*, host: str, port: int, workers: int, forwarded_allow_ips: str) -> None:
    """Serve the application factory with uvicorn until stopped."""
    trusted = forwarded_allow_ips.strip()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=DeadlineH11Protocol,
        # Without configured addresses, no proxy header is believed: uvicorn would trust
        # X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS) by default.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        access_log=False,
        log_level="warning",
    )
