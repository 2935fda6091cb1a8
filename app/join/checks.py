"""The checks of a sign-up through the public link (pure): the signed stamp of when the
screening page was shown, the hold reasons (bots, repeat sign-ups, bursts), and the
match of a typed signature with the name given.

None of these refuses a person outright, nor tells them anything: a sign-up that trips
one is held for a coordinator (SPEC 10: never silently merged, never refused with a
reason that helps an impostor). Only a flood far beyond the limits (`REFUSE_FACTOR`
times) is turned away with a "try later" page, so storage stays bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Hold(StrEnum):
    """Why a sign-up waits for a coordinator (shown to staff, never to the applicant)."""

    duplicate_email = "duplicate_email"  # the email of a participant or another sign-up
    duplicate_phone = "duplicate_phone"
    honeypot = "honeypot"  # the field people never see was filled in
    too_fast = "too_fast"  # sent sooner than `join.min_seconds` after the page was shown
    busy_address = "busy_address"  # many sign-ups from one network address this hour
    busy_study = "busy_study"  # many sign-ups in the study this hour
    rescreened = "rescreened"  # eligible just after an ineligible screening from its address


# Held at screening: a bot's sign-up is not assessed for eligibility (CONSORT).
BOT_HOLDS = frozenset({Hold.honeypot, Hold.too_fast})
REFUSE_FACTOR = 10  # this many times a limit in an hour: "try later", nothing stored
RATE_WINDOW = timedelta(hours=1)
STAMP_LIFETIME = timedelta(hours=24)  # an older page is treated as not shown (too fast)


def stamp(key: bytes, *, slug: str, shown_at: datetime) -> str:
    """The hidden field carrying when the screening page was shown, signed for the study:
    "<unix seconds>.<HMAC>" (a forged or moved stamp does not verify)."""
    seconds = int(shown_at.timestamp())
    return f"{seconds}.{_stamp_mac(key, slug, seconds)}"


def shown_at(key: bytes, *, slug: str, given: str, now: datetime) -> datetime | None:
    """When the page with this stamp was shown; None for a stamp that is missing,
    malformed, forged, from another study, from the future or too old."""
    if len(given) > 100 or given.count(".") != 1:
        return None
    number, mac = given.split(".")
    if not (number.isascii() and number.isdigit() and len(number) <= 12):
        return None
    seconds = int(number)
    if not hmac.compare_digest(_stamp_mac(key, slug, seconds).encode(), mac.encode()):
        return None
    at = datetime.fromtimestamp(seconds, UTC)
    if at > now + timedelta(seconds=5) or now - at > STAMP_LIFETIME:
        return None
    return at


def _stamp_mac(key: bytes, slug: str, seconds: int) -> str:
    return hmac.new(key, f"join-stamp:{slug}:{seconds}".encode(), hashlib.sha256).hexdigest()


IPV6_PREFIX = 64  # one subscriber's share of IPv6: a home or phone gets a whole /64


def address_hash(key: bytes, address: str) -> str:
    """The network address as kept: a keyed hash (counting sign-ups needs no address).
    An IPv6 address counts by its /64 (anyone holding one can use any of its 2^64
    addresses, so the whole address would give unlimited sign-ups); IPv4 (also written
    as IPv6, `::ffff:a.b.c.d`) by the whole address."""
    return hmac.new(
        key, f"join-address:{counted_address(address)}".encode(), hashlib.sha256
    ).hexdigest()


def counted_address(address: str) -> str:
    """What a sign-up is counted by: the IPv4 address, the IPv6 /64, or the text as is
    (a client the server could not name)."""
    try:
        parsed = ipaddress.ip_address(address[:100])
    except ValueError:
        return address[:100]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


def bot_holds(
    *, honeypot: str, shown: datetime | None, now: datetime, min_seconds: int
) -> list[Hold]:
    """Signs of a program rather than a person: the hidden field filled in, or the page
    sent sooner than a person can read it (a missing or bad stamp counts as too fast)."""
    holds = [Hold.honeypot] if honeypot.strip() else []
    if shown is None or (now - shown).total_seconds() < min_seconds:
        holds.append(Hold.too_fast)
    return holds


@dataclass(frozen=True)
class Rate:
    holds: tuple[Hold, ...]
    refuse: bool  # far beyond a limit: a "try later" page, nothing stored


def rate(*, from_address: int, in_study: int, per_address: int, per_study: int) -> Rate:
    """The verdict on one more sign-up, given how many came in the last hour from its
    address and in the whole study (before it)."""
    holds = []
    if from_address >= per_address:
        holds.append(Hold.busy_address)
    if in_study >= per_study:
        holds.append(Hold.busy_study)
    refuse = from_address >= per_address * REFUSE_FACTOR or in_study >= per_study * REFUSE_FACTOR
    return Rate(tuple(holds), refuse)


def duplicate_holds(*, email_taken: bool, phone_taken: bool) -> list[Hold]:
    """A repeat sign-up (the same email or phone as a participant or another sign-up of
    the study) is held for a coordinator: never merged, never refused."""
    return ([Hold.duplicate_email] if email_taken else []) + (
        [Hold.duplicate_phone] if phone_taken else []
    )


def signature_form(name: str) -> str:
    """A name as a typed signature is compared: Unicode NFKC, case folded, without any
    white space (so "Ana  María López" and "ana maría lópez" match; accents count)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if not c.isspace())


def names_match(typed: str, given: str) -> bool:
    """Whether the typed signature is the full name the person gave."""
    form = signature_form(typed)
    return bool(form) and form == signature_form(given)
