"""When to try a message again (pure): backing off, then giving up and saying so."""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_ATTEMPTS = 6  # then the message is shown as failed to the site's coordinators
FIRST_WAIT = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=2)


def next_attempt(*, attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failed tries (None: give up): 1, 2, 4, 8, 16
    minutes and so on, at most two hours apart."""
    if attempts >= MAX_ATTEMPTS:
        return None
    wait: timedelta = min(FIRST_WAIT * 2 ** (attempts - 1), LONGEST_WAIT)
    return now + wait
