"""Stratum keys (pure): the one place that writes and reads them.

A key is the site (when the study stratifies by site) and then each factor's level, in
the order the study lists its factors: `site=PHL|diagnosis=bipolar`; `all` when the
study is not stratified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

UNSTRATIFIED = "all"
SITE = "site"  # the factor name of the site, reserved in study definitions
# Strata a study may have (sites x the combinations of its factors' levels): each has
# its own sequence, and simulation and reports work through every one.
MAX_STRATA = 1000
_PART, _LEVEL = "|", "="


def stratum_key(*, site: str | None, factors: Sequence[str], levels: Mapping[str, str]) -> str:
    """The key of the stratum of these levels (`site` None: not stratified by site)."""
    parts = [(SITE, site)] if site is not None else []
    parts += [(factor, levels[factor]) for factor in factors]
    return _join(parts)


def parse_stratum_key(key: str) -> dict[str, str]:
    """The factors and levels of a key, in order; ValueError when it is not a key."""
    if key == UNSTRATIFIED:
        return {}
    parsed: dict[str, str] = {}
    for part in key.split(_PART):
        factor, sep, level = part.partition(_LEVEL)
        if not sep or not factor or factor in parsed:
            raise ValueError(f"{key!r} is not a stratum key")
        parsed[factor] = level
    return parsed


def expected_factors(*, by_site: bool, factors: Sequence[str]) -> list[str]:
    """The factor names a key of such a study has, in order."""
    return ([SITE] if by_site else []) + list(factors)


def longest_key(
    *, by_site: bool, site_code_length: int, factors: Sequence[tuple[str, Sequence[str]]]
) -> int:
    """The length of the longest key a study with these factors can make."""
    parts = [(SITE, "x" * site_code_length)] if by_site else []
    parts += [(code, max(levels, key=len)) for code, levels in factors if levels]
    return len(_join(parts))


def count_strata(*, sites: int | None, levels_per_factor: Sequence[int]) -> int:
    """How many strata a study has: `sites` None when it is not stratified by site."""
    count = sites if sites is not None else 1
    for levels in levels_per_factor:
        count *= levels
    return count


def combine_shares(parts: Sequence[tuple[str, Mapping[str, float]]]) -> dict[str, float]:
    """Every stratum of these factors (each with its levels' shares) and its share: the
    product of its levels' shares. No factors: the one unstratified stratum."""
    combined: list[tuple[list[tuple[str, str]], float]] = [([], 1.0)]
    for factor, shares in parts:
        combined = [
            ([*key, (factor, level)], share * level_share)
            for key, share in combined
            for level, level_share in shares.items()
        ]
    return {_join(key): share for key, share in combined}


def _join(parts: Sequence[tuple[str, str]]) -> str:
    return _PART.join(f"{factor}{_LEVEL}{level}" for factor, level in parts) or UNSTRATIFIED
