"""Personal survey links (pure): a token per survey and issue, derived from a key only
the server holds; the database keeps only the token's hash.

`token` is HMAC-SHA256(key, "<participant id>:<timepoint>:<issue>"), 256 bits in
URL-safe base64 (43 characters): nobody without the key can derive or guess one.
Reading a participant shows the current link without changing it; reissuing raises
the issue number, which gives a new token and retires the old one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_LENGTH = 43  # URL-safe base64 of 32 bytes, without padding


def survey_token(key: bytes, *, participant_id: int, timepoint: str, issue: int) -> str:
    """The token of issue `issue` of the participant's survey at `timepoint`."""
    message = f"{participant_id}:{timepoint}:{issue}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(text: str) -> bool:
    """Whether `text` has a token's shape (anything else is refused without a lookup)."""
    return len(text) == TOKEN_LENGTH and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in text
    )


def form_token(key: bytes, *, hashed_token: str, issue: int) -> str:
    """The hidden `csrf_token` of the survey's form: only a page the server rendered for
    this link (and this issue of it) carries it."""
    return hmac.new(key, f"form:{hashed_token}:{issue}".encode(), hashlib.sha256).hexdigest()
