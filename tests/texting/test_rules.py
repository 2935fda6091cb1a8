"""The pure rules of text messages: a received text's kind, quiet hours (across
midnight, on the nights clocks change), Twilio's signature, what a text says."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.i18n import catalogs
from app.outbox.models import MessageKind
from app.scheduler.texts import auto_reply, first_name_of, survey_text
from app.studies.definition import Sms
from app.texting.rules import quiet_until, reply_kind
from app.texting.signature import signature_ok, twilio_signature

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", "stop"),
        ("  stop.", "stop"),
        (" Unsubscribe!! ", "stop"),
        ("quit", "stop"),
        ("Start", "start"),
        ("YES", "start"),
        ("help!", "help"),
        ("info", "help"),
        ("I can't stop crying", "reply"),
        # A keyword only as the whole text: these are read by a person.
        ("Yes I took all my pills", "reply"),
        ("End it all tonight", "reply"),
        ("Quit. I can't do this", "reply"),
        ("Cancel everything, I want to die", "reply"),
        ("Unsubscribe please", "reply"),
        ("Help me", "reply"),
        ("", "reply"),
        ("\u200b", "reply"),
    ],
)
def test_a_text_is_a_keyword_only_when_it_is_the_whole_text(body: str, kind: str) -> None:
    assert reply_kind(body) == kind


def _ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2027-03-10 20:59", None),
        ("2027-03-10 21:00", "2027-03-11 09:00"),
        ("2027-03-11 03:00", "2027-03-11 09:00"),
        ("2027-03-11 09:00", None),
        # The night clocks go forward (14 March 2027): still 09:00 on the wall.
        ("2027-03-13 23:30", "2027-03-14 09:00"),
    ],
)
def test_quiet_hours_end_at_the_local_end_time(now: str, until: str | None) -> None:
    found = quiet_until(_ny(now), zone=NEW_YORK, start="21:00", end="09:00")
    assert found == (_ny(until) if until else None)


def test_quiet_hours_within_a_day_and_none_when_start_equals_end() -> None:
    assert quiet_until(_ny("2027-01-05 13:00"), zone=NEW_YORK, start="12:00", end="14:00") == _ny(
        "2027-01-05 14:00"
    )
    assert quiet_until(_ny("2027-01-05 13:00"), zone=NEW_YORK, start="09:00", end="09:00") is None


def test_the_signature_covers_the_address_and_every_field() -> None:
    url = "https://trial.example/api/v1/sms/status"
    fields = [("MessageSid", "SM1"), ("MessageStatus", "delivered")]
    good = twilio_signature(url, fields, token="secret")
    assert signature_ok(url, list(reversed(fields)), token="secret", signature=good)
    assert not signature_ok(url + "?x=1", fields, token="secret", signature=good)
    assert not signature_ok(url, [*fields, ("ErrorCode", "1")], token="secret", signature=good)
    assert not signature_ok(url, fields, token="other", signature=good)
    assert not signature_ok(url, fields, token="secret", signature=None)
    assert not signature_ok(url, fields, token="secret", signature="\udcff")


def test_a_text_carries_the_link_and_first_name_and_is_translated() -> None:
    sms = Sms(enabled=True, first_name=True, crisis_line="Call 988")
    text = survey_text(
        MessageKind.invitation, sms=sms, link="https://x/s/t", first_name=first_name_of("Ana Ruiz")
    )
    assert text == "Hello Ana, your survey is ready: https://x/s/t Reply STOP to end texts."
    own = Sms(first_name=True, reminder="{first_name}, still open: {link}")
    assert survey_text(MessageKind.reminder, sms=own, link="L", first_name="Ana") == (
        "Ana, still open: L Reply STOP to end texts."
    )
    # Put in as words, never formatted: a format spec stays as written, a name is not
    # expanded, and words that tell of STOP get no second opt-out.
    hostile = Sms(first_name=True, invitation="{link:>999999999} {first_name} STOP ends")
    assert survey_text(MessageKind.invitation, sms=hostile, link="L", first_name="{link}") == (
        "{link:>999999999} {link} STOP ends"
    )
    with catalogs.speaking("es"):
        assert survey_text(MessageKind.reminder, sms=Sms(), link="L", first_name="Ana") == (
            "Le recordamos que su encuesta sigue abierta: L Responda STOP para dejar de recibir "
            "mensajes."
        )
        answer = auto_reply(crisis_line="Llame al 988", support=None, help_asked=False)
        assert answer == "Nadie revisa este número a todas horas. Llame al 988"
    long = auto_reply(crisis_line="Call 988", support="x" * 20_000, help_asked=True)
    assert len(long) <= 1600 and "Call 988" in long and long.endswith("Reply STOP to end texts.")
