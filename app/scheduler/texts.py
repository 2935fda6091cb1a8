"""What a text message says (SPEC 11): the personal link, and nothing about health.

No study title and no illness: a text shows on a lock screen, and a phone is often
shared. The study may write its own words (`sms.invitation`, `sms.reminder`, with
`{link}` and, with `sms.first_name`, `{first_name}`); otherwise these fixed texts, in
the participant's language (the dispatcher wraps them in `catalogs.speaking`).
"""

from __future__ import annotations

from app.i18n.catalogs import gettext
from app.outbox.models import MessageKind
from app.studies.definition import Sms


def N_(message: str) -> str:
    """Mark a text for translation where it is defined; translated where written."""
    return message


NOT_WATCHED = N_("This number is not watched around the clock.")
OPT_OUT = N_("Reply STOP to end texts.")


def survey_text(kind: MessageKind, *, sms: Sms, link: str, first_name: str | None) -> str:
    """An invitation's or a reminder's text."""
    own = sms.invitation if kind is MessageKind.invitation else sms.reminder
    name = first_name if sms.first_name and first_name else None
    if own is not None:
        return own.format(link=link, first_name=name or "").strip()
    if kind is MessageKind.invitation:
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


def auto_reply(*, crisis_line: str | None, support: str | None, help_asked: bool) -> str:
    """The answer to every text a participant sends (not STOP): nobody may be reading
    it now, so where to get help at once; HELP adds the study's support text."""
    parts = [gettext(NOT_WATCHED)]
    if crisis_line:
        parts.append(crisis_line)
    if help_asked:
        if support:
            parts.append(support)
        parts.append(gettext(OPT_OUT))
    return " ".join(parts)


def first_name_of(name: str | None) -> str | None:
    """The first word of a full name, as a greeting uses it."""
    words = (name or "").split()
    return words[0][:40] if words else None
