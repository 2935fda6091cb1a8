"""A study's lifecycle (pure): draft → enrolling → locked, and what each status allows."""

from __future__ import annotations

from enum import StrEnum

from app.errors import StudyLocked, StudyNotDraft, StudyNotEnrolling


class StudyStatus(StrEnum):
    draft = "draft"  # editable; no enrollment
    enrolling = "enrolling"  # randomization settings fixed, commitment published
    locked = "locked"  # database lock: no more changes; the secret is revealed


def ensure_draft(status: StudyStatus, *, what: str = "changed this way") -> None:
    """Only a draft may be activated or have its allocation table replaced."""
    if status != StudyStatus.draft:
        raise StudyNotDraft(f"the study is {status}: only a draft can be {what}")


def ensure_enrolling(status: StudyStatus) -> None:
    """Screening, enrollment and randomization need an enrolling study."""
    if status != StudyStatus.enrolling:
        raise StudyNotEnrolling(f"the study is {status}, not enrolling")


def ensure_not_locked(status: StudyStatus) -> None:
    """Sites and withdrawals may change until database lock."""
    if status == StudyStatus.locked:
        raise StudyLocked("the study is locked")
