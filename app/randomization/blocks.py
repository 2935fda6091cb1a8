"""Permuted blocks drawn from a study secret (pure: the rule of SPEC section 3).

Block k of a stratum is a function of (secret, stratum key, k) alone:

- its size is drawn uniformly from the configured block sizes;
- its content is a uniformly random permutation of the arms, each arm appearing
  ``ratio * size / sum(ratios)`` times.

The random numbers come from HMAC-SHA256(secret, "<stratum>|<block>|<purpose>|<counter>")
used as a byte stream, with rejection sampling so that every draw is exactly
uniform. The sequence is unpredictable without the secret, yet anyone who holds it
can re-derive every allocation (`trialdesk verify`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

SECRET_BYTES = 32


@dataclass(frozen=True)
class ArmRatio:
    code: str
    ratio: int


@dataclass(frozen=True)
class Slot:
    """One place in a stratum's sequence: block number, size, position (1-based) and arm."""

    block: int
    block_size: int
    position: int
    arm: str


class HmacStream:
    """A deterministic stream of uniform integers keyed by a secret and a label."""

    def __init__(self, secret: bytes, label: str) -> None:
        self._secret = secret
        self._label = label.encode()
        self._counter = 0
        self._buffer = b""

    def _bytes(self, n: int) -> bytes:
        while len(self._buffer) < n:
            message = self._label + b"|" + str(self._counter).encode()
            self._buffer += hmac.new(self._secret, message, hashlib.sha256).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def below(self, n: int) -> int:
        """A uniform integer in [0, n), by rejection so no value is favoured."""
        if n <= 0:
            raise ValueError("n must be positive")
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            value = int.from_bytes(self._bytes(8), "big")
            if value < limit:
                return value % n


def block_size(*, secret: bytes, stratum: str, block: int, sizes: Sequence[int]) -> int:
    """The size of block `block` (1-based) of the stratum."""
    stream = HmacStream(secret, f"{stratum}|{block}|size")
    return sizes[stream.below(len(sizes))]


def block_arms(
    *, secret: bytes, stratum: str, block: int, size: int, arms: Sequence[ArmRatio]
) -> list[str]:
    """The arms of block `block`, in order: a uniform permutation of the balanced multiset."""
    total = sum(a.ratio for a in arms)
    if size % total:
        raise ValueError(f"block size {size} is not a multiple of the ratio sum {total}")
    content = [a.code for a in arms for _ in range(a.ratio * size // total)]
    stream = HmacStream(secret, f"{stratum}|{block}|order")
    for i in range(len(content) - 1, 0, -1):  # Fisher-Yates
        j = stream.below(i + 1)
        content[i], content[j] = content[j], content[i]
    return content


def generate_block(
    *, secret: bytes, stratum: str, block: int, sizes: Sequence[int], arms: Sequence[ArmRatio]
) -> list[str]:
    """Block `block` of the stratum: its size drawn, then its content permuted."""
    size = block_size(secret=secret, stratum=stratum, block=block, sizes=sizes)
    return block_arms(secret=secret, stratum=stratum, block=block, size=size, arms=arms)


def next_slot(
    *,
    secret: bytes,
    stratum: str,
    last_block: int,
    last_block_size: int,
    last_position: int,
    sizes: Sequence[int],
    arms: Sequence[ArmRatio],
) -> Slot:
    """The slot after (last_block, last_position); (0, 0, 0) means none taken yet."""
    if last_block == 0 or last_position >= last_block_size:
        block = last_block + 1
        size = block_size(secret=secret, stratum=stratum, block=block, sizes=sizes)
        position = 1
    else:
        block, size, position = last_block, last_block_size, last_position + 1
    arm = block_arms(secret=secret, stratum=stratum, block=block, size=size, arms=arms)
    return Slot(block=block, block_size=size, position=position, arm=arm[position - 1])


def sequence(
    *, secret: bytes, stratum: str, count: int, sizes: Sequence[int], arms: Sequence[ArmRatio]
) -> list[Slot]:
    """The first `count` slots of the stratum, as `next_slot` hands them out."""
    slots: list[Slot] = []
    block = size = position = 0
    while len(slots) < count:
        slot = next_slot(
            secret=secret,
            stratum=stratum,
            last_block=block,
            last_block_size=size,
            last_position=position,
            sizes=sizes,
            arms=arms,
        )
        slots.append(slot)
        block, size, position = slot.block, slot.block_size, slot.position
    return slots


def commitment(*, secret: bytes, slug: str) -> str:
    """The published commitment: hex SHA-256 of the 32 secret bytes followed by the slug."""
    return hashlib.sha256(secret + slug.encode("utf-8")).hexdigest()
