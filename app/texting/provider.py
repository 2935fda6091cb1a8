"""How a text message leaves: Twilio's REST API (plain httpx), or a file per text.

Without a provider (`TRIALDESK_SMS_PROVIDER` unset) each text is written as a file into
`mail_dir/sms/`, beside the email files, so `make run` needs nothing. With `twilio`,
each text is one POST to `{api}/2010-04-01/Accounts/{sid}/Messages.json`; the answer's
`sid` is kept on the outbox row so that its delivery callbacks find it.

What fails for good and what is tried again follows Twilio's answers: a 4xx (an invalid
number, 21211; a number that sent STOP, 21610) cannot succeed by trying again, except
401 (credentials being fixed), 408 and 429 (slow down); a 5xx, a timeout or a broken
connection is tried again with the outbox's backoff, like an email.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx

from app.config import Settings

RETRIED_4XX = frozenset({401, 408, 429})


@dataclass(frozen=True)
class Text:
    """A text message to send: to whom (E.164), what it says, and the outbox row's key
    (the file's name with the file backend)."""

    to: str
    body: str
    key: str


class TextFailed(Exception):
    """This try failed; the text is tried again later."""


class TextRefused(Exception):
    """The provider will never take this text (an invalid number, an opted-out one)."""


class TextSender(Protocol):
    def send(self, text: Text) -> str | None:
        """Hand the text over; the provider's id of it (None: the file backend)."""
        ...

    def close(self) -> None: ...


class FileTexts:
    """Writes each text as a `.txt` file (owner-only) into a folder: for development."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, text: Text) -> str | None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp: mode 0600
                file.write(f"To: {text.to}\nX-Trialdesk-Key: {text.key}\n\n{text.body}\n")
            os.replace(temporary, self.folder / f"{stamp}-{text.key}.txt")
        except OSError as error:
            raise TextFailed(f"{type(error).__name__}: {error}"[:500]) from error
        return None

    def close(self) -> None:
        pass


class TwilioTexts:
    """Twilio's Messages API, over one HTTP connection kept for a pass."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        assert settings.twilio_account_sid and settings.twilio_auth_token is not None
        self.sid = settings.twilio_account_sid
        self.url = (
            f"{settings.twilio_api_url.rstrip('/')}/2010-04-01/Accounts/{self.sid}/Messages.json"
        )
        self.sender = (
            {"MessagingServiceSid": settings.twilio_messaging_service_sid}
            if settings.twilio_messaging_service_sid
            else {"From": settings.twilio_from or ""}
        )
        self.callback = f"{settings.sms_callback_base}/api/v1/sms/status"
        self.client = client or httpx.Client(
            auth=(self.sid, settings.twilio_auth_token.get_secret_value()),
            timeout=httpx.Timeout(settings.sms_timeout_s),
        )

    def send(self, text: Text) -> str | None:
        form = {**self.sender, "To": text.to, "Body": text.body, "StatusCallback": self.callback}
        try:
            answer = self.client.post(self.url, data=form)
        except httpx.HTTPError as error:  # timeouts, refused or broken connections
            raise TextFailed(f"{type(error).__name__}: {error}"[:500]) from error
        if answer.status_code >= 400:
            problem = _problem(answer)
            if answer.status_code < 500 and answer.status_code not in RETRIED_4XX:
                raise TextRefused(problem)
            raise TextFailed(problem)
        try:
            sid = answer.json()["sid"]
        except (ValueError, KeyError, TypeError) as error:
            raise TextFailed(f"HTTP {answer.status_code}: no message id in the answer") from error
        if not isinstance(sid, str) or not 0 < len(sid) <= 64:
            raise TextFailed(f"HTTP {answer.status_code}: no message id in the answer")
        return sid

    def close(self) -> None:
        self.client.close()


def _problem(answer: httpx.Response) -> str:
    """Twilio's error code and words (they may name the number: the outbox seals them)."""
    try:
        found = answer.json()
        detail = f"{found.get('code')}: {found.get('message')}"
    except (ValueError, AttributeError):
        detail = answer.text[:200]
    return f"HTTP {answer.status_code}: {detail}"[:500]


def text_sender_for(settings: Settings) -> TextSender:
    if settings.sms_provider == "twilio":
        return TwilioTexts(settings)
    return FileTexts(settings.sms_folder)
