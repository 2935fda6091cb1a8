"""Posted HTML forms: read within bounds, and the tokens that show a form came from a
page this server rendered (CSRF)."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from typing import Annotated

from fastapi import Depends, Request

MAX_FORM_FIELDS = 1000

Form = dict[str, list[str]]


async def read_form(request: Request) -> Form:
    """The posted form's fields (files are refused), each with every value sent."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return {}
    fields: Form = defaultdict(list)
    async with request.form(max_files=0, max_fields=MAX_FORM_FIELDS) as form:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name].append(value)
    return dict(fields)


FormDep = Annotated[Form, Depends(read_form)]


def first(form: Form, name: str) -> str:
    """The first value of a field ("" when it was not sent)."""
    values = form.get(name)
    return values[0] if values else ""


def csrf_token(key: bytes, *, bound_to: str) -> str:
    """The hidden `csrf_token` of a form, bound to what only its rightful sender holds
    (a session, a sign-in link): another site cannot make one."""
    return hmac.new(key, f"csrf:{bound_to}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, *, bound_to: str, given: str) -> bool:
    """Whether a posted `csrf_token` is the one of that binding (in constant time)."""
    return hmac.compare_digest(csrf_token(key, bound_to=bound_to).encode(), given.encode())
