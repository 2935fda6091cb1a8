"""The human labels of the export's coded values, and its missing-value codes (pure).

The codebook labels every coded value from what the study definition says (option
labels, timepoints) or, for the product's own codes (survey status, mode, kinds of
leaving), from the tables below, so that a statistician reads "Entered by staff
(interview)" where the file says `staff`.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.i18n.languages import LANGUAGES
from app.retention.rules import MISSED_REASON_LABELS

NOT_SCHEDULED = "not_scheduled"  # the timepoint was never scheduled for the participant
WITHHELD = "withheld"  # answered on or after a withdrawal of consent to the use of data

STATUS_LABELS: dict[str, str] = {
    "scheduled": "Scheduled (window not open yet)",
    "open": "Open (window open, not completed)",
    "completed": "Completed",
    "missed": "Missed (window closed before completion)",
    "cancelled": "Cancelled (participant left the study)",
    NOT_SCHEDULED: "Not scheduled for this participant",
    WITHHELD: "Withheld (answered on or after the withdrawal of consent to use the data)",
}

# SPEC 11: why a missed survey was missed, as staff recorded it.
MISSED_LABELS: dict[str, str] = dict(MISSED_REASON_LABELS)

MODE_LABELS: dict[str, str] = {
    "self": "Self-completed (participant's link)",
    "staff": "Entered by staff (interview)",
}

# SPEC 8: the kinds of leaving. Codes decided with the participants package (issue 14).
WITHDRAWAL_KIND_LABELS: dict[str, str] = {
    "intervention": "Stopped the intervention (still followed up)",
    "follow_up": "Withdrew from follow-up",
    "data": "Withdrew consent to the use of their data",
    "lost": "Lost to follow-up",
    "died": "Died",
}

PARTICIPANT_STATUS_LABELS: dict[str, str] = {
    "enrolled": "Enrolled, not randomized",
    "randomized": "Randomized",
    "withdrawn": "Left the study (see withdrawal_kind)",
}

DATE_PRECISION_LABELS: dict[str, str] = {
    "day": "Full date (the day is given)",
    "month": "Month and year only (no day given)",
    "year": "Year only (no day given)",
}

SOURCE_LABELS: dict[str, str] = {
    "staff": "Screened and consented by staff",
    "join": "Screened themselves and consented online (public link)",
}

BOOLEAN_LABELS: tuple[tuple[int | str, str], ...] = ((0, "No"), (1, "Yes"))


def humanized(code: str) -> str:
    """A label made from a code the definition gives no label for: `no_longer_interested`
    → "No longer interested"."""
    text = code.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else code


def labelled(codes: dict[str, str]) -> tuple[tuple[int | str, str], ...]:
    return tuple(codes.items())


# A statistician reads the codebook in English: each language's English name first.
ENGLISH_NAMES = {"en": "English", "es": "Spanish", "ar": "Arabic"}


def language_labels(codes: Sequence[str]) -> tuple[tuple[int | str, str], ...]:
    """The study's languages as coded values: `es` labelled "Spanish (Español)". The
    definition's list is frozen at activation, so every survey's language is in it."""
    return tuple((code, _language_label(code)) for code in codes)


def _language_label(code: str) -> str:
    known = LANGUAGES.get(code)
    english = ENGLISH_NAMES.get(code)
    if known is None:
        return code
    return known.name if english in (None, known.name) else f"{english} ({known.name})"


# Missing values. In CSV and JSON a missing value is an empty cell / null, and which kind
# it is follows from the row's survey status (so numeric columns stay numeric for every
# reader); Stata and SPSS carry the kind in the cell itself.
NOT_GIVEN = "not_given"  # the survey was not completed (scheduled, open, missed, cancelled)
SKIPPED = "skipped"  # the survey was completed, this item left blank (or score not made)
MISSING_CODES: dict[str, dict[str, str | int]] = {
    # Stata extended missing values; SPSS user-missing values (numeric columns).
    NOT_GIVEN: {"stata": ".a", "spss": -9},
    SKIPPED: {"stata": ".b", "spss": -8},
}
MISSING_TEXT = (
    "Missing answers and scores: an empty cell (CSV) or null (JSON). The row's survey "
    "status says which kind: when the status is `completed` the item was skipped (an "
    "optional item left blank, or a score that could not be made), otherwise the survey "
    "was not given (scheduled, open, missed, cancelled, withheld or not scheduled). Stata files "
    "code them as extended missing values .a (not given) and .b (skipped); SPSS files as "
    "user-missing values -9 (not given) and -8 (skipped) in numeric columns."
)
