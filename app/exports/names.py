"""Column names as Stata and SPSS variable names (pure): see `statfiles`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from app.exports.model import Column

# Stata allows 32 characters, but pyreadstat names a variable's value labels after it with
# a number appended (`group0`, `status1`...): 28 leaves room for 9,999 labelled columns.
NAME_LIMIT = 28
RESERVED = {
    # Stata
    *("byte", "double", "float", "if", "in", "int", "long", "strl", "using", "with"),
    # SPSS
    *("all", "and", "by", "eq", "ge", "gt", "le", "lt", "ne", "not", "or", "to"),
}
_INVALID = re.compile(r"[^A-Za-z0-9_]")
_STR_TYPE = re.compile(r"^str\d+$")


def file_name(name: str) -> str:
    """A column's name as a Stata and SPSS variable name (see the module's rules)."""
    out = _INVALID.sub("_", name)
    if not out[:1].isalpha():
        out = "v" + out
    if out.lower() in RESERVED or _STR_TYPE.match(out.lower()):
        out += "_v"
    if len(out) > NAME_LIMIT:
        digest = hashlib.sha256(name.encode()).hexdigest()[:5]
        out = f"{out[: NAME_LIMIT - 6]}_{digest}"
    return out


def file_names(cols: Sequence[Column]) -> list[str]:
    """Every column's variable name, unique without regard to case (SPSS)."""
    seen: set[str] = set()
    out = []
    for col in cols:
        name = file_name(col.name)
        base, n = name, 1
        while name.lower() in seen:
            n += 1
            name = f"{base[: NAME_LIMIT - len(str(n)) - 1]}_{n}"
        seen.add(name.lower())
        out.append(name)
    return out
