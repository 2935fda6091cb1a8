"""The sign-up checks as pure rules: the signed stamp, bot signs, rate limits,
duplicates, and the typed signature's match with the name given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.join import checks
from app.join.checks import Hold

KEY = b"k" * 32
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_stamp_reads_back_only_for_its_study_and_key_and_within_a_day():
    stamp = checks.stamp(KEY, slug="s", shown_at=NOW - timedelta(seconds=30))
    assert checks.shown_at(KEY, slug="s", given=stamp, now=NOW) == NOW - timedelta(seconds=30)
    assert checks.shown_at(KEY, slug="other", given=stamp, now=NOW) is None
    assert checks.shown_at(b"x" * 32, slug="s", given=stamp, now=NOW) is None
    assert checks.shown_at(KEY, slug="s", given=stamp, now=NOW + timedelta(days=2)) is None
    for forged in ("", "1.2.3", "abc.def", "9" * 40 + ".x", stamp.replace(".", ".0")):
        assert checks.shown_at(KEY, slug="s", given=forged, now=NOW) is None


def test_bot_signs_are_the_honeypot_and_a_page_sent_too_soon_or_without_a_stamp():
    shown = NOW - timedelta(seconds=10)
    assert checks.bot_holds(honeypot="", shown=shown, now=NOW, min_seconds=8) == []
    assert checks.bot_holds(honeypot=" x ", shown=shown, now=NOW, min_seconds=8) == [Hold.honeypot]
    assert checks.bot_holds(honeypot="", shown=shown, now=NOW, min_seconds=11) == [Hold.too_fast]
    assert checks.bot_holds(honeypot="", shown=None, now=NOW, min_seconds=0) == [Hold.too_fast]


def test_rates_hold_at_the_limit_and_refuse_at_ten_times_it():
    calm = checks.rate(from_address=4, in_study=199, per_address=5, per_study=200)
    assert calm == checks.Rate((), False)
    busy = checks.rate(from_address=5, in_study=200, per_address=5, per_study=200)
    assert busy == checks.Rate((Hold.busy_address, Hold.busy_study), False)
    assert checks.rate(from_address=50, in_study=0, per_address=5, per_study=200).refuse
    assert checks.rate(from_address=0, in_study=2000, per_address=5, per_study=200).refuse


def test_duplicates_are_hold_reasons():
    assert checks.duplicate_holds(email_taken=False, phone_taken=False) == []
    assert checks.duplicate_holds(email_taken=True, phone_taken=True) == [
        Hold.duplicate_email,
        Hold.duplicate_phone,
    ]


def test_a_signature_matches_the_name_ignoring_case_and_spaces_but_not_letters():
    assert checks.names_match("ana maría  LÓPEZ", "Ana María López")
    full_width = "\uff2a\uff4f \uff2c\uff45\uff45"  # "Jo Lee" in full-width letters (NFKC)
    assert checks.names_match(full_width, "Jo Lee")
    assert not checks.names_match("Ana Maria Lopez", "Ana María López")  # accents count
    assert not checks.names_match("   ", "")
    assert not checks.names_match("Ana", "Ana López")


def test_addresses_are_kept_as_keyed_hashes():
    hashed = checks.address_hash(KEY, "203.0.113.9")
    assert hashed == checks.address_hash(KEY, "203.0.113.9") and "203" not in hashed
    assert hashed != checks.address_hash(b"x" * 32, "203.0.113.9")


def test_an_ipv6_address_counts_by_its_64_and_ipv4_by_the_whole_address():
    same = checks.address_hash(KEY, "2001:db8:1:2::1")
    assert checks.address_hash(KEY, "2001:db8:1:2:ffff:ffff:ffff:ffff") == same
    assert checks.address_hash(KEY, "2001:db8:1:3::1") != same
    assert checks.address_hash(KEY, "203.0.113.9") != checks.address_hash(KEY, "203.0.113.10")
    assert checks.counted_address("::ffff:203.0.113.9") == "203.0.113.9"
    assert checks.counted_address("unknown") == "unknown"


def test_a_rescreened_sign_up_is_a_person_awaiting_review_in_consort():
    from app.reports.flow import AWAITING_REVIEW, applicant_box

    assert applicant_box("held", ["rescreened"], participant=False) == AWAITING_REVIEW
