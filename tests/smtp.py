"""A real SMTP server in the test process (aiosmtpd), keeping what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.live import free_port


class Inbox:
    """An aiosmtpd handler: accepts mail (refusing the addresses in `refuse`) and keeps
    each message; with `meet`, each sender waits at MAIL FROM until that many distinct
    connections have come, so that concurrent senders truly overlap."""

    def __init__(self, *, meet: int = 0, meet_timeout_s: float = 20.0) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.peers: set[Any] = set()
        self.meet = meet
        self.meet_timeout_s = meet_timeout_s
        self.received = threading.Event()
        self._met: asyncio.Event | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.meet:
            self._met = self._met or asyncio.Event()
            self.peers.add(session.peer)
            if len(self.peers) >= self.meet:
                self._met.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._met.wait(), self.meet_timeout_s)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.received.set()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


@contextlib.contextmanager
def smtp_server(inbox: Inbox) -> Iterator[int]:
    """Serve `inbox` on a loopback port (yielded) until the block ends."""
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=30)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content
