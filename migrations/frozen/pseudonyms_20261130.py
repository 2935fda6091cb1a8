"""Frozen copy of `pseudonym` from app/studies/pseudonyms.py as of 2026-11-30: never edit.

A participant's pseudonym is `P` and 12 base-32 characters of
HMAC-SHA256(blinding key, "pseudonym|<participant code>").
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PSEUDONYM_CHARACTERS = 12


def pseudonym(key: bytes, participant_code: str) -> str:
    """The participant's pseudonym in the study's exports."""
    digest = hmac.new(key, b"pseudonym|" + participant_code.encode(), hashlib.sha256).digest()
    return "P" + base64.b32encode(digest).decode()[:PSEUDONYM_CHARACTERS]
