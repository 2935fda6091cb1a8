"""Lists: `?limit=&cursor=`, and the `next` link that keeps the other filters."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import Depends, Query, Request

from app.errors import FieldProblem, InvalidInput


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = text.split(":", 1)
        number = int(value)
        if version != "v1" or not 0 <= number < 2**63:
            raise ValueError
        return number
    except ValueError:
        raise InvalidInput(
            [FieldProblem(("cursor",), "not a cursor this API gave")], part="query"
        ) from None


class Page:
    """One page of a list: its size, where it starts, and how to link the next one."""

    def __init__(self, request: Request, limit: int, after: int) -> None:
        self.request = request
        self.limit = limit
        self.after = after

    def next_url(self, *, count: int, last_id: int | None) -> str | None:
        """The URL of the next page (on TRIALDESK_BASE_URL, never on the Host the
        request named), or None when this page was the last."""
        if count < self.limit or last_id is None:
            return None
        base: str = self.request.app.state.settings.base_url.rstrip("/")
        query = self.request.url.include_query_params(cursor=encode_cursor(last_id)).query
        return f"{base}{self.request.url.path}?{query}"


async def get_page(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64, description="opaque; from `next`")] = None,
) -> Page:
    return Page(request, limit, decode_cursor(cursor))


PageDep = Annotated[Page, Depends(get_page)]
