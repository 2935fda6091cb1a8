"""What the provider's webhooks depend on: a provider configured, a signed form.

Without a provider (the file backend) nobody may call them: 404. The signature is
checked over the address the provider was given (`sms_callback_url`, else `base_url`)
and every form field, before anything is read from the form or the database, and
before a request slot is taken: an unsigned request (or a slow sender) holds no slot.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from app.api.deps import RequestSlot
from app.errors import Forbidden, NotFound
from app.texting.signature import signature_ok

MAX_FIELDS = 64  # Twilio sends about 20


class NoProvider(NotFound):
    code, title = "no-sms-provider", "Not Found"


class BadSignature(Forbidden):
    code, title = "bad-signature", "The request is not signed by the SMS provider"


async def signed_form(request: Request) -> dict[str, str]:
    """The webhook's form fields, once its `X-Twilio-Signature` is Twilio's."""
    settings = request.app.state.settings
    if settings.sms_provider != "twilio" or settings.twilio_auth_token is None:
        raise NoProvider("no SMS provider is configured")
    form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    fields = [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
    url = settings.sms_callback_base + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not signature_ok(
        url,
        fields,
        token=settings.twilio_auth_token.get_secret_value(),
        signature=request.headers.get("X-Twilio-Signature"),
    ):
        raise BadSignature()
    return {k: v for k, v in fields}


async def signed_form_in_slot(
    form: Annotated[dict[str, str], Depends(signed_form)], _slot: Annotated[None, RequestSlot]
) -> dict[str, str]:
    """The signed form, then a request slot (held until the response): the slot is taken
    only once the bounded body is read and its signature checked."""
    return form


SignedForm = Annotated[dict[str, str], Depends(signed_form_in_slot)]
