"""Pseudonyms and group codes from a study's blinding key (pure).

A participant's pseudonym is `P` and 12 base-32 characters of
HMAC-SHA256(key, "pseudonym|<participant code>"): the same in every export of the study,
and no one without the key can tell whose it is. It is never stored beside the code:
exports compute it. They are ordered by another keyed hash of the code, `export_order`
(stored, indexed), so that a row's place is the same in every export and tells nothing
of when or where someone enrolled. The arms, in the order the study lists
them, are dealt to the group codes `G1..Gk` by a Fisher-Yates shuffle drawn from
HMAC-SHA256(key, "groups|<counter>") (the generator of `randomization.blocks`): which
group is which arm cannot be read from the order of the definition, nor from the
randomization secret revealed at lock, since the key is another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from app.randomization.blocks import HmacStream

PSEUDONYM_CHARACTERS = 12  # 60 bits: no collision to fear among a trial's participants


def pseudonym(key: bytes, participant_code: str) -> str:
    """The participant's pseudonym in the study's exports."""
    digest = hmac.new(key, b"pseudonym|" + participant_code.encode(), hashlib.sha256).digest()
    return "P" + base64.b32encode(digest).decode()[:PSEUDONYM_CHARACTERS]


def export_order(key: bytes, participant_code: str) -> str:
    """The participant's place in the study's exports: HMAC-SHA256(key, "order|<code>"),
    hex (independent of the pseudonym, so the stored value does not give it away)."""
    return hmac.new(key, b"order|" + participant_code.encode(), hashlib.sha256).hexdigest()


def group_codes(key: bytes, arms: Sequence[str]) -> dict[str, str]:
    """Arm code → group code (`G1`, `G2`, ...), in an order only the key knows."""
    dealt = list(arms)
    stream = HmacStream(key, "groups")
    for i in range(len(dealt) - 1, 0, -1):
        j = stream.below(i + 1)
        dealt[i], dealt[j] = dealt[j], dealt[i]
    return {arm: f"G{n}" for n, arm in enumerate(dealt, start=1)}
