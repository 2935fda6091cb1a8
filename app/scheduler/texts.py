"""What a text message says (SPEC 11): the personal link, and nothing about health.

No study title and no illness: a text shows on a lock screen, and a phone is often
shared. The study may write its own words (`sms.invitation`, `sms.reminder`, with
`{link}` and, with `sms.first_name`, `{first_name}`); otherwise these fixed texts, in
the participant's language (the dispatcher wraps them in `catalogs.speaking`).
"""

from __future__ import annotations

import re

from app.i18n.catalogs import gettext
from app.outbox.models import MessageKind
from app.studies.definition import Sms


def N_(message: str) -> str:
    """Mark a text for translation where it is defined; translated where written."""
    return message


NOT_WATCHED = N_("This number is not watched around the clock.")
OPT_OUT = N_("Reply STOP to end texts.")
MAX_TEXT = 1600  # the longest message Twilio takes
PLACES = re.compile(r"\{(link|first_name)\}")


def survey_text(kind: MessageKind, *, sms: Sms, link: str, first_name: str | None) -> str:
    """An invitation's or a reminder's text (a reissued link is sent as the invitation:
    "your survey is ready" with the new link says all a new link needs to)."""
    own = sms.reminder if kind is MessageKind.reminder else sms.invitation
    name = first_name if sms.first_name and first_name else None
    if own is not None:
        return _own_words(own, link=link, first_name=name or "")
    if kind is not MessageKind.reminder:
        words = (
            gettext("Hello %(name)s, your survey is ready: %(link)s")
            if name
            else gettext("Your survey is ready: %(link)s")
        )
    else:
        words = (
            gettext("Hello %(name)s, a reminder: your survey is still open: %(link)s")
            if name
            else gettext("A reminder: your survey is still open: %(link)s")
        )
    return f"{words % {'name': name, 'link': link}} {gettext(OPT_OUT)}"


def _own_words(own: str, *, link: str, first_name: str) -> str:
    """The study's words with `{link}` and `{first_name}` put in, in one pass (never
    `str.format`: a format spec such as `{link:>999999999}` would build a gigabyte, and
    a name holding `{link}` is not expanded), then the opt-out sentence carriers ask
    for, unless the words already tell of STOP."""
    values = {"link": link, "first_name": first_name}
    text = PLACES.sub(lambda found: values[found.group(1)], own).strip()
    return text if "STOP" in own else f"{text} {gettext(OPT_OUT)}"


def auto_reply(*, crisis_line: str | None, support: str | None, help_asked: bool) -> str:
    """The answer to a text a participant sends (not STOP or START): nobody may be
    reading it now, so where to get help at once; HELP adds the study's support text,
    cut to keep the whole within one message Twilio takes (the crisis line is never
    cut: it comes first)."""
    parts = [gettext(NOT_WATCHED)]
    if crisis_line:
        parts.append(crisis_line)
    if help_asked:
        opt_out = gettext(OPT_OUT)
        room = MAX_TEXT - len(" ".join([*parts, opt_out])) - 1
        if support and room > 1:
            parts.append(support if len(support) <= room else support[: room - 1] + "…")
        parts.append(opt_out)
    return " ".join(parts)[:MAX_TEXT]


def first_name_of(name: str | None) -> str | None:
    """The first word of a full name, as a greeting uses it."""
    words = (name or "").split()
    return words[0][:40] if words else None
