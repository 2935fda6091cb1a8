"""Emails: what each message says, and the two ways it leaves (SMTP, or a file).

The words are written when the message is sent, from what the database holds then; no
link, address or answer is stored with a queued message. An alert email names the
participant by code and links to the system; it never carries answers.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from app.config import Settings


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email (the signed consent's PDF copy)."""

    filename: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class Letter:
    """An email to write: who to, about what, and what it says (and any files)."""

    to: Sequence[str]
    subject: str
    body: str
    attachments: Sequence[Attachment] = ()


def _when(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def invitation(
    *, study_title: str, survey_name: str, link: str, closes_on: date, support: str | None
) -> tuple[str, str]:
    """(subject, body) of the email sent when a survey opens."""
    subject = f"Your survey is ready: {study_title}"
    body = (
        f"Hello,\n\n"
        f"Your {survey_name.lower()} for the study \u201c{study_title}\u201d is ready.\n\n"
        f"Open your survey here:\n{link}\n\n"
        f"You can fill it in until {_when(closes_on)}. If you need a break, choose "
        f"\u201cSave and continue later\u201d: the same link opens your answers again.\n\n"
        f"This link is for you only. Please do not share it.\n"
    )
    return subject, body + _signature(support)


def reminder(
    *, study_title: str, survey_name: str, link: str, closes_on: date, support: str | None
) -> tuple[str, str]:
    """(subject, body) of a reminder, while the survey is still not sent."""
    subject = f"Reminder: your survey is open until {_when(closes_on)}"
    body = (
        f"Hello,\n\n"
        f"This is a reminder that your {survey_name.lower()} for the study "
        f"\u201c{study_title}\u201d is still open. Your answers help the study.\n\n"
        f"Open your survey here:\n{link}\n\n"
        f"You can fill it in until {_when(closes_on)}. Answers you saved before are "
        f"kept.\n\n"
        f"This link is for you only. Please do not share it.\n"
    )
    return subject, body + _signature(support)


def new_link(
    *, study_title: str, survey_name: str, link: str, closes_on: date, support: str | None
) -> tuple[str, str]:
    """(subject, body) of the email with a survey's new link, after the study team
    replaced the old one (which no longer works)."""
    subject = f"Your new survey link: {study_title}"
    body = (
        f"Hello,\n\n"
        f"The study team has made you a new link for your {survey_name.lower()} for the "
        f"study \u201c{study_title}\u201d. The link you had before no longer works.\n\n"
        f"Open your survey here:\n{link}\n\n"
        f"You can fill it in until {_when(closes_on)}. Answers you saved before are "
        f"kept.\n\n"
        f"This link is for you only. Please do not share it.\n"
    )
    return subject, body + _signature(support)


def alert(*, study_title: str, participant: str, site: str, link: str) -> tuple[str, str]:
    """(subject, body) of a safety alert to the site's coordinators: no answers."""
    subject = f"Safety alert for participant {participant} ({site})"
    body = (
        f"A survey submitted by participant {participant} at site {site} of the study "
        f"\u201c{study_title}\u201d raised a safety alert.\n\n"
        f"Please follow the study's safety procedure now. The alert, and the participant's "
        f"details, are in Trialdesk:\n{link}\n\n"
        f"When you have dealt with it, acknowledge the alert there with a note.\n\n"
        f"This email holds no answers; do not forward it outside the study team.\n"
    )
    return subject, body


SAFETY_EVENT_SUBJECT = "Trialdesk: a serious adverse event to review"


def safety_event(*, study_title: str, event: str, site: str, link: str) -> tuple[str, str]:
    """(subject, body) of the email to a study's safety contacts about a serious adverse
    event. No health details: not the term, the seriousness criteria, the participant's
    answers or code; the subject is the same for every event (it shows on lock screens)."""
    body = (
        f"A serious adverse event, {event}, was recorded at site {site} of the study "
        f"\u201c{study_title}\u201d.\n\n"
        f"It may have a reporting deadline. Please review it in Trialdesk now:\n{link}\n\n"
        f"This email holds no details of the event; do not forward it outside the study "
        f"team.\n"
    )
    return SAFETY_EVENT_SUBJECT, body


def sign_in(*, link: str, minutes: int) -> tuple[str, str]:
    """(subject, body) of a one-time sign-in link to the staff console."""
    subject = "Your Trialdesk sign-in link"
    body = (
        f"Hello,\n\n"
        f"Here is your link to sign in to Trialdesk:\n{link}\n\n"
        f"It works once, for {minutes} minutes from when you asked for it.\n\n"
        f"If you did not ask to sign in, you can ignore this email: nobody can sign in "
        f"without the link.\n"
    )
    return subject, body


def _signature(support: str | None) -> str:
    return f"\n{support}\n" if support else ""


def email_message(
    letter: Letter, *, sender: str, now: datetime, key: str | None = None
) -> EmailMessage:
    """The email of a letter. With `key` (the outbox message's), its Message-ID is the
    same on every try: should a crash between sending and recording it make the
    scheduler send it again, mail systems can tell it is one message."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(letter.to)
    message["Subject"] = " ".join(letter.subject.split())  # a title's line breaks: one line
    message["Date"] = format_datetime(now)
    domain = sender.rpartition("@")[2] or "trialdesk.local"
    message["Message-ID"] = f"<{key}@{domain}>" if key else make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(letter.body)
    for attachment in letter.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message


class SendFailed(Exception):
    """The message could not be handed over (it is retried later)."""


class PartlySent(SendFailed):
    """Some recipients took the message, others were refused: it is not sent again
    (those who have it would get it twice), but shown as failed with the reason."""


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...

    def close(self) -> None: ...


class SmtpTransport:
    """Hands messages to an SMTP server, over one connection kept for a batch."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        assert s.smtp_host is not None
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
        try:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_user, password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            raise SendFailed(_describe(error)) from error
        if refused:
            # Some recipients took it: sending again would repeat it to them.
            raise PartlySent(f"refused for {len(refused)} of the recipients") from None

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


class FileTransport:
    """Writes each message as an .eml file into a folder (readable by its owner only),
    as Django's file backend does: for development and demos, no server needed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(descriptor, "wb") as file:  # mkstemp: mode 0600
                file.write(message.as_bytes())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.folder / f"{stamp}-{Path(temporary).stem[1:]}.eml")
        except OSError as error:
            raise SendFailed(_describe(error)) from error

    def close(self) -> None:
        pass


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_host:
        return SmtpTransport(settings)
    return FileTransport(settings.mail_folder)


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return f"SMTP {error.smtp_code}: {_text(error.smtp_error)}"[:500]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = {f"SMTP {code}: {_text(reply)}" for code, reply in error.recipients.values()}
        return f"the server refused every recipient ({'; '.join(sorted(replies))})"[:500]
    return f"{type(error).__name__}: {error}"[:500]


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
