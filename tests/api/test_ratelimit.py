"""The failure limiter: per address, within a sliding window, memory bounded."""

from __future__ import annotations

import pytest

from app.api import ratelimit
from app.api.ratelimit import FailureLimiter
from app.errors import TooManyAttempts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_over_the_limit_waits_until_its_oldest_failure_leaves_the_window():
    clock = Clock()
    limiter = FailureLimiter(failures=3, window_s=60, clock=clock)
    for _ in range(3):
        limiter.check("a")
        limiter.failed("a")
        clock.now += 10
    with pytest.raises(TooManyAttempts) as refused:
        limiter.check("a")
    assert refused.value.retry_after == 30  # the first failure leaves the window at 1060
    limiter.check("b")  # other addresses are not affected
    clock.now += 30
    limiter.check("a")


def test_the_limiter_forgets_the_oldest_address_when_it_tracks_too_many(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 3)
    limiter = FailureLimiter(failures=1, window_s=60, clock=Clock())
    for address in ("a", "b", "c", "d"):
        limiter.failed(address)
    limiter.check("a")  # forgotten
    with pytest.raises(TooManyAttempts):
        limiter.check("d")
