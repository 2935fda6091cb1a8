"""Twilio's request signature (pure): how a callback proves it comes from the provider.

Twilio signs each webhook with HMAC-SHA1, keyed with the account's auth token, over the
full URL it called followed by every form field's name and value, sorted by name; the
base64 digest travels in `X-Twilio-Signature`. Compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def twilio_signature(url: str, fields: Iterable[tuple[str, str]], *, token: str) -> str:
    """The signature Twilio sends for a POST of these form fields to `url`."""
    data = url + "".join(f"{name}{value}" for name, value in sorted(fields))
    digest = hmac.new(token.encode(), data.encode("utf-8", "surrogatepass"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_ok(
    url: str, fields: Iterable[tuple[str, str]], *, token: str, signature: str | None
) -> bool:
    """Whether `signature` is Twilio's for this request."""
    if not signature:
        return False
    expected = twilio_signature(url, fields, token=token)
    return hmac.compare_digest(expected.encode(), signature.encode(errors="replace"))
