"""Dependencies of the routes a survey link reaches (no staff account)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request

from app.api.body import refuse_bad_input
from app.api.deps import RequestSlot
from app.api.ratelimit import FailureLimiter
from app.errors import UnknownSurveyLink

Token = Annotated[str, Path(max_length=64, description="the survey link's token")]


async def slow_down_link_guessers(request: Request) -> AsyncIterator[None]:
    """429 with Retry-After, in place of the answer to an unknown link, for an address
    that tried too many unknown links lately; each unknown link it tries counts, a known
    link always works."""
    try:
        yield
    except UnknownSurveyLink:
        # Only unknown links are slowed down: participants behind one address (a clinic's
        # network) keep opening their own links while someone there guesses.
        limiter: FailureLimiter = request.app.state.unknown_links
        address = request.client.host if request.client else "unknown"
        limiter.check(address)
        limiter.failed(address)
        raise


# Every route a survey link reaches: a request slot, the address not slowed down, then
# the checks of the body.
LINK_ROUTES = [
    RequestSlot,
    Depends(slow_down_link_guessers, scope="function"),
    Depends(refuse_bad_input),
]
