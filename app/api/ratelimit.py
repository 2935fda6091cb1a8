"""Slowing down guessers: too many failures from one address in a window gives 429.

Kept in the memory of each process (a restart forgets it); with several processes each
counts its own. Callers count failures only, and check the limit only on a failure: a
valid token or link is never refused. Behind a proxy, run `trialdesk serve
--forwarded-allow-ips PROXY` so that the address is the client's, not the proxy's
(docs/operations.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from app.errors import TooManyAttempts

MAX_TRACKED = 10_000  # addresses remembered at once: an attacker cannot fill the memory


class FailureLimiter:
    """At most `failures` failures per address within `window_s` seconds."""

    def __init__(
        self,
        *,
        failures: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise TooManyAttempts (with the seconds to wait) if the address is over."""
        with self._lock:
            recent = self._recent(address)
            if recent is not None and len(recent) >= self.failures:
                wait = recent[0] + self.window_s - self.clock()
                raise TooManyAttempts(
                    "too many failed attempts from this address; wait and try again",
                    retry_after=max(1, math.ceil(wait)),
                )

    def failed(self, address: str) -> None:
        """Count one failure of the address."""
        with self._lock:
            recent = self._recent(address)
            if recent is None:
                if len(self._seen) >= MAX_TRACKED:
                    self._seen.pop(next(iter(self._seen)))  # forget the oldest address
                recent = self._seen[address] = deque()
            recent.append(self.clock())

    def _recent(self, address: str) -> deque[float] | None:
        recent = self._seen.get(address)
        if recent is None:
            return None
        horizon = self.clock() - self.window_s
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._seen[address]
            return None
        return recent
