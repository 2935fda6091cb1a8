"""Stratum keys: one writer, one reader, and the same keys everywhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.randomization.strata import (
    UNSTRATIFIED,
    combine_shares,
    longest_key,
    parse_stratum_key,
    stratum_key,
)

codes = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
levels = st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True)


def test_a_key_lists_the_site_then_each_factor_in_the_study_order():
    key = stratum_key(
        site="PHL", factors=["diagnosis", "sex"], levels={"sex": "f", "diagnosis": "bipolar"}
    )
    assert key == "site=PHL|diagnosis=bipolar|sex=f"
    assert stratum_key(site=None, factors=[], levels={}) == UNSTRATIFIED


@given(
    site=st.one_of(st.none(), st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True)),
    factors=st.dictionaries(codes.filter(lambda c: c != "site"), levels, max_size=4),
)
def test_parsing_a_key_gives_back_what_made_it(site, factors):
    key = stratum_key(site=site, factors=list(factors), levels=factors)
    expected = ({"site": site} if site is not None else {}) | factors
    assert parse_stratum_key(key) == expected
    assert list(parse_stratum_key(key)) == list(expected)  # the order is part of the key


@pytest.mark.parametrize("bad", ["site", "=x", "a=1|a=2", "a=1|"])
def test_what_is_not_a_key_is_refused(bad):
    with pytest.raises(ValueError):
        parse_stratum_key(bad)


def test_the_longest_key_is_as_long_as_the_longest_levels_make_it():
    factors = [("diagnosis", ["bipolar", "schizophrenia_spectrum"]), ("sex", ["f", "m"])]
    longest = stratum_key(
        site="X" * 12, factors=["diagnosis", "sex"],
        levels={"diagnosis": "schizophrenia_spectrum", "sex": "f"},
    )  # fmt: skip
    assert longest_key(by_site=True, site_code_length=12, factors=factors) == len(longest)


def test_combined_shares_multiply_and_name_every_stratum():
    shares = combine_shares([("site", {"PHL": 2.0, "PIT": 1.0}), ("dx", {"a": 0.5, "b": 0.5})])
    assert shares == {
        "site=PHL|dx=a": 1.0,
        "site=PHL|dx=b": 1.0,
        "site=PIT|dx=a": 0.5,
        "site=PIT|dx=b": 0.5,
    }
    assert combine_shares([]) == {UNSTRATIFIED: 1.0}
