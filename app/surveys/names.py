"""A survey's name as a participant reads it, in the language being rendered.

Timepoints are codes (`baseline`, `week_6`, `month_4`); staff pages show them as
"Month 4 survey" (`service.timepoint_name`). Participant pages and emails translate the
usual shapes of code (baseline, screening, day/week/month/year N, end, follow-up N);
any other code is shown in words made from it inside a translated "%(name)s survey".
"""

from __future__ import annotations

import re

from app.i18n.catalogs import gettext

_NUMBERED = re.compile(r"^(day|week|month|year|follow_?up)[_-]?(\d{1,4})$")


def survey_name(code: str) -> str:
    """The timepoint's survey, named in the current language."""
    match = _NUMBERED.match(code)
    if match is not None:
        unit, n = match.group(1), int(match.group(2))
        if unit == "day":
            return gettext("Day %(n)s survey") % {"n": n}
        if unit == "week":
            return gettext("Week %(n)s survey") % {"n": n}
        if unit == "month":
            return gettext("Month %(n)s survey") % {"n": n}
        if unit == "year":
            return gettext("Year %(n)s survey") % {"n": n}
        return gettext("Follow-up %(n)s survey") % {"n": n}
    if code == "baseline":
        return gettext("Baseline survey")
    if code == "screening":
        return gettext("Screening survey")
    if code in ("end", "final", "end_of_study"):
        return gettext("End of study survey")
    if code in ("followup", "follow_up"):
        return gettext("Follow-up survey")
    words = code.replace("_", " ").replace("-", " ").strip()
    return gettext("%(name)s survey") % {"name": f"{words[:1].upper()}{words[1:]}"}
