"""Stratum keys (pure): the site, then each factor's level, in the study's order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

UNSTRATIFIED = "all"


def stratum_key(*, site: str | None, factors: Sequence[str], levels: Mapping[str, str]) -> str:
    """E.g. `site=PHL|diagnosis=bipolar`; `all` when the study is not stratified."""
    parts = [f"site={site}"] if site is not None else []
    parts += [f"{factor}={levels[factor]}" for factor in factors]
    return "|".join(parts) or UNSTRATIFIED


def parse_stratum_key(key: str) -> dict[str, str]:
    """The inverse of `stratum_key`."""
    if key == UNSTRATIFIED:
        return {}
    return dict(part.split("=", 1) for part in key.split("|"))
