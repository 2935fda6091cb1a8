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


def stored_forms(e164: str) -> list[str]:
    """The forms a number may have been stored in (and so hashed by its digits): E.164,
    the international digits without `+` (`12155550123`), the national significant
    number (`2155550123`) and the national digits with a trunk prefix (`02079460018`).
    Numbers typed before they were kept in E.164 are found by one of these; [] when
    `e164` is not a valid number."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return []
    if not phonenumbers.is_valid_number(number):
        return []
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    forms = [
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        f"{number.country_code}{phonenumbers.national_significant_number(number)}",
        phonenumbers.national_significant_number(number),
        "".join(c for c in national if c.isdigit()),
    ]
    return list(dict.fromkeys(f for f in forms if f))


def is_e164(raw: str) -> bool:
    """Whether `raw` is a valid number written in E.164 (`+` and digits): a short code
    or an alphanumeric sender is not, and cannot be answered."""
    if not raw.startswith("+") or not raw[1:].isdigit():
        return False
    try:
        return to_e164(raw, region="ZZ") == raw
    except ValueError:
        return False
