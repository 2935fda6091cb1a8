"""The public pages' forms read within bounds (pure): every field checked, every problem
worded as PAGES.md asks (how to fix it), in the page's language.

A problem is (field id, message): the id of the first input of the question at fault,
which the error summary links to.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from pydantic import EmailStr, TypeAdapter, ValidationError

from app.i18n.catalogs import gettext as _

NAME_MAX = 200
EMAIL_MAX = 320
PHONE_MAX = 32
FIELD_MAX = 1000  # any single field: longer is refused before it is looked at

# An address people can write and a mail server accept: no spaces, one @, a dot after.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ()\-.]{6,32}$")

_EMAIL_STR: TypeAdapter[str] = TypeAdapter(EmailStr)

Form = Mapping[str, Sequence[str]]


@dataclass
class Parsed:
    """What a form said, as typed (to show it again), and the problems found."""

    typed: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def problem(self, field_id: str, message: str) -> None:
        self.problems.append((field_id, message))


def value(form: Form, name: str) -> str:
    """The first value of a field, bounded and without control characters ("" if absent)."""
    values = form.get(name) or [""]
    text = values[0][:FIELD_MAX]
    return "".join(c for c in text if unicodedata.category(c) != "Cc" or c in "\t\n")


def choice(form: Form, name: str, allowed: Sequence[str]) -> str | None:
    """The chosen value of a radio group, if it is exactly one of `allowed`."""
    chosen = (form.get(name) or [""])[0]
    return chosen if chosen in allowed else None


@dataclass(frozen=True)
class Contact:
    name: str
    email: str
    phone: str | None
    date_of_birth: str | None


def contact(form: Form, *, ask_date_of_birth: bool, today: date) -> tuple[Contact | None, Parsed]:
    """The contact step: full name and email required, phone optional, date of birth
    (day, month, year) when the study asks for it."""
    parsed = Parsed()
    name = " ".join(value(form, "name").split())
    email = value(form, "email").strip()
    phone = value(form, "phone").strip()
    parsed.typed.update(name=value(form, "name"), email=email, phone=phone)
    if not name:
        parsed.problem("name", _("Enter your full name"))
    elif len(name) > NAME_MAX:
        parsed.problem("name", _("Your name must be %(n)s characters or fewer") % {"n": NAME_MAX})
    if not email:
        parsed.problem("email", _("Enter your email address"))
    elif len(email) > EMAIL_MAX or not _EMAIL.match(email) or not _deliverable_form(email):
        parsed.problem(
            "email", _("Enter an email address in the correct format, like name@example.com")
        )
    if phone and not _PHONE.match(phone):
        parsed.problem("phone", _("Enter a phone number, like 01632 960 001 or +44 7700 900 982"))
    born = _date_of_birth(form, parsed, today) if ask_date_of_birth else None
    if parsed.problems:
        return None, parsed
    return Contact(name, email, phone or None, born), parsed


def _deliverable_form(email: str) -> bool:
    """Whether enrollment's contact model takes the address (pydantic's EmailStr): the
    same rule here, so a sign-up never fails later at enrollment."""
    try:
        _EMAIL_STR.validate_python(email)
    except ValidationError:
        return False
    return True


def _date_of_birth(form: Form, parsed: Parsed, today: date) -> str | None:
    parts = {p: value(form, f"dob-{p}").strip() for p in ("day", "month", "year")}
    parsed.typed.update({f"dob-{p}": v for p, v in parts.items()})
    if not all(parts.values()):
        parsed.problem("dob-day", _("Enter your date of birth"))
        return None
    try:
        born = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except (ValueError, OverflowError):
        parsed.problem("dob-day", _("Date of birth must be a real date"))
        return None
    if not (today.year - 120 <= born.year and born <= today):
        parsed.problem("dob-day", _("Date of birth must be in the past"))
        return None
    return born.isoformat()
