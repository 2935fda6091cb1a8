"""Re-consent links (pure): a token per participant and consent version, derived from a
key only the server holds (the survey links' key, which stays the same across key
rotations, under a label of its own).

A token is `<participant id>.<mac>`, the mac HMAC-SHA256(key, "reconsent:<participant
id>:<version>") in URL-safe base64 (43 characters). The link needs no stored state:
the page reads the participant by the id and accepts the link only if the mac is that
of the study's active version, so nobody without the key can make one, and the link
of a version the study has since replaced leads nowhere. The id is the participant's
row number, not their code: it says nothing about them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MAC_LENGTH = 43  # URL-safe base64 of 32 bytes, without padding
MAX_LENGTH = 20 + 1 + MAC_LENGTH


def _mac(key: bytes, participant_id: int, version: str) -> str:
    message = f"reconsent:{participant_id}:{version}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def reconsent_token(key: bytes, participant_id: int, version: str) -> str:
    """The token of the participant's link to re-consent to `version`."""
    return f"{participant_id}.{_mac(key, participant_id, version)}"


def participant_of(token: str) -> int | None:
    """The participant id a well-shaped token names (None: refuse without a look-up)."""
    if len(token) > MAX_LENGTH or token.count(".") != 1:
        return None
    number, mac = token.split(".")
    if not (number.isascii() and number.isdigit() and len(number) <= 18) or len(mac) != MAC_LENGTH:
        return None
    if not all(c.isascii() and (c.isalnum() or c in "-_") for c in mac):
        return None
    return int(number)


def is_token_of(key: bytes, token: str, *, participant_id: int, version: str) -> bool:
    """Whether `token` is the link of this participant to re-consent to `version`."""
    return hmac.compare_digest(
        token.encode(), reconsent_token(key, participant_id, version).encode()
    )
