"""Phone numbers (pure): parsed with Google's libphonenumber rules, kept in E.164."""

from __future__ import annotations

import phonenumbers

MAX_PHONE = 40  # characters of a phone number as typed


def to_e164(raw: str, *, region: str) -> str:
    """The number in E.164 (`+12155550123`), read as dialled in `region` (ISO 3166
    code) unless it starts with `+`; ValueError when it is not a valid number."""
    if len(raw) > MAX_PHONE:
        raise ValueError("too long for a phone number")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as error:
        raise ValueError("not a phone number") from error
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def can_text(e164: str) -> bool:
    """Whether the number may receive text messages (a mobile, or one that may be)."""
    kind = phonenumbers.number_type(phonenumbers.parse(e164, None))
    return kind in {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.VOIP,
        phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
        phonenumbers.PhoneNumberType.UNKNOWN,
    }
