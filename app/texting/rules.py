"""Rules of text messages (pure): what a received text asks for, and quiet hours.

A received text is a keyword only when the WHOLE message is one (any case, spaces and
trailing punctuation aside), as carriers and Twilio read their opt-out and help
keywords: so what the study records agrees with what the provider does (after STOP it
refuses to deliver until START). A first word is never enough: "Yes I took all my
pills" is a reply someone reads, and "End it all tonight" is not an opt-out.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def reply_kind(body: str) -> str:
    """`stop`, `start`, `help` or `reply`: a keyword only when it is the whole text (any
    case, spaces around and punctuation after it: "Stop." is a STOP, "Stop it" is not)."""
    word = body.strip().rstrip(".!?,;: \t\r\n").strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return "reply"


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, *, zone: ZoneInfo, start: str, end: str) -> datetime | None:
    """When quiet hours (`start` to `end`, local `HH:MM`, maybe across midnight) end, if
    `now` falls inside them; None when a text may go now. The end is the first local
    `end` after `now`, in UTC: on a day clocks change, it is still the local time."""
    local = now.astimezone(zone)
    begins, ends = _clock(start), _clock(end)
    if begins == ends:
        return None  # no quiet hours
    at = local.timetz().replace(tzinfo=None)
    inside = begins <= at < ends if begins < ends else at >= begins or at < ends
    if not inside:
        return None
    day = local.date() if at < ends else local.date() + timedelta(days=1)
    return datetime.combine(day, ends, tzinfo=zone).astimezone(now.tzinfo)
