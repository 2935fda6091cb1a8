"""A study's lifecycle as a pure rule: draft, enrolling, locked."""

from __future__ import annotations

import pytest

from app.errors import StudyLocked, StudyNotDraft, StudyNotEnrolling
from app.studies.lifecycle import StudyStatus, ensure_draft, ensure_enrolling, ensure_not_locked

S = StudyStatus


def test_each_status_allows_what_it_should_and_refuses_the_rest():
    allowed = {
        ensure_draft: {S.draft},
        ensure_enrolling: {S.enrolling},
        ensure_not_locked: {S.draft, S.enrolling},
    }
    refused_with = {ensure_draft: StudyNotDraft, ensure_enrolling: StudyNotEnrolling}
    refused_with[ensure_not_locked] = StudyLocked
    for check, statuses in allowed.items():
        for status in S:
            if status in statuses:
                check(status)
            else:
                with pytest.raises(refused_with[check]):
                    check(status)
