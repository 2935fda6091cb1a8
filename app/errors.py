"""Domain errors, named for what happened; `app.api.errors` alone maps them to HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of the input; `loc` is its path in the document."""

    loc: Loc
    msg: str


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "domain-error"
    title = "Request refused"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class NotAuthenticated(DomainError):
    code, title = "not-authenticated", "Missing or unknown token"


class Forbidden(DomainError):
    code, title = "forbidden", "Not allowed for this role"


class NotFound(DomainError):
    code, title = "not-found", "Not found"


class Conflict(DomainError):
    code, title = "conflict", "Conflicts with the current state"


class Busy(DomainError):
    """A resource this request needs stayed taken too long (503, Retry-After)."""

    code, title = "busy", "Service Unavailable"


class TooManyAttempts(DomainError):
    """Too many failures from one address (429, Retry-After)."""

    code, title = "too-many-attempts", "Too Many Requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class InvalidInput(DomainError):
    """The input breaks a rule; every problem found is listed with its path."""

    code, title = "invalid-input", "Invalid input"

    def __init__(
        self, problems: Sequence[FieldProblem], detail: str | None = None, *, part: str = "body"
    ) -> None:
        self.problems = list(problems)
        self.part = part  # which part of the request the paths are in: body or query
        super().__init__(detail or "; ".join(f"{_dotted(p.loc)}: {p.msg}" for p in problems))


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc) or "(document)"


# --- studies -------------------------------------------------------------------------
class StudyNotFound(NotFound):
    code, title = "study-not-found", "Study not found"


class StudySlugTaken(Conflict):
    code, title = "study-slug-taken", "A study with this slug exists"


class StudyNotDraft(Conflict):
    code, title = "study-not-draft", "Only a draft study can be changed this way"


class StudyNotEnrolling(Conflict):
    code, title = "study-not-enrolling", "The study is not enrolling"


class InvalidStudyDefinition(InvalidInput):
    code, title = "invalid-study-definition", "Invalid study definition"


class StudyLocked(Conflict):
    code, title = "study-locked", "The study is locked"


class AllocationTableMissing(Conflict):
    code, title = "allocation-table-missing", "The study has no allocation table"


class AllocationTableNotUsed(Conflict):
    code, title = "allocation-table-not-used", "The study does not use an allocation table"


class InvalidAllocationTable(InvalidInput):
    code, title = "invalid-allocation-table", "Invalid allocation table"


class TooManyStrata(Conflict):
    code, title = "too-many-strata", "The study would have too many strata"


class SiteCodeTaken(Conflict):
    code, title = "site-code-taken", "A site with this code exists in the study"


# --- users -----------------------------------------------------------------------------
class EmailTaken(Conflict):
    code, title = "email-taken", "A user with this email exists"


class UserNotFound(NotFound):
    code, title = "user-not-found", "User not found"


class LastAdmin(Conflict):
    code, title = "last-admin", "The last active admin cannot be deactivated"


# --- participants ----------------------------------------------------------------------
class ParticipantNotFound(NotFound):
    code, title = "participant-not-found", "Participant not found"


class InvalidEnrollment(InvalidInput):
    code, title = "invalid-enrollment", "Invalid enrollment"


class NotEnrolled(Conflict):
    code, title = "not-enrolled", "The participant is not enrolled"


class AlreadyRandomized(Conflict):
    code, title = "already-randomized", "The participant is already randomized"


class AllocationTableExhausted(Conflict):
    code, title = "allocation-table-exhausted", "The allocation table has no slot left"


class CannotWithdraw(Conflict):
    code, title = "cannot-withdraw", "The participant cannot be withdrawn in this status"


class NotRandomized(Conflict):
    code, title = "not-randomized", "The participant has no allocation"


# --- surveys ---------------------------------------------------------------------------
class UnknownSurveyLink(NotFound):
    code, title = "unknown-survey-link", "This survey link does not exist"


class SurveyNotOpenYet(Conflict):
    code, title = "survey-not-open-yet", "This survey is not open yet"


class SurveyAlreadyCompleted(Conflict):
    code, title = "survey-completed", "This survey was already completed"


class SurveyNotOpen(Conflict):
    code, title = "survey-not-open", "The survey is not open"


class SurveyLinkNotReplaceable(Conflict):
    code, title = "survey-link-not-replaceable", "Only a pending survey's link can be replaced"


class SurveyLinkGone(DomainError):
    """The participant withdrew (the survey was cancelled), or the link was replaced
    by a newer one (410)."""

    code, title = "survey-link-gone", "This survey link can no longer be used"


class SurveyLinkReplaced(SurveyLinkGone):
    code, title = "survey-link-replaced", "This survey link was replaced by a newer one"
    newer_sent = False  # the participant was emailed the newer link (queued or sent)
    support: str | None = None  # the study's support text, for the page


class SurveyClosed(SurveyLinkGone):
    """The survey's window closed before it was completed: the link has expired (410;
    SPEC section 4: a closed link gets a 404/410, never data)."""

    code, title = "survey-closed", "This survey has closed"


class SurveyCancelled(SurveyLinkGone):
    code, title = "survey-cancelled", "This survey was cancelled"


class InvalidAnswers(InvalidInput):
    code, title = "invalid-answers", "Some answers need correcting"


class TimepointNotCompleted(Conflict):
    code, title = "timepoint-not-completed", "A survey must be completed before randomization"


class NotVerified(Conflict):
    code, title = "not-verified", "A self-reported diagnosis must be verified before randomization"


class ApplicantNotFound(NotFound):
    code, title = "applicant-not-found", "Applicant not found"


class ApplicantDecided(Conflict):
    code, title = "applicant-decided", "The sign-up was already accepted or rejected"


class AlreadyVerified(Conflict):
    code, title = "already-verified", "The participant's diagnosis was already verified"


class AlertNotFound(NotFound):
    code, title = "alert-not-found", "Alert not found"


class SurveyNotFound(NotFound):
    code, title = "survey-not-found", "Survey not found"


class SurveyNotEnterable(Conflict):
    """Staff enter a survey while it is open or after it was missed (late data), never
    before it opens, once completed (corrections are the way) or once cancelled."""

    code, title = "survey-not-enterable", "This survey cannot be entered now"


class SurveyNotCompleted(Conflict):
    code, title = "survey-not-completed", "Only a completed survey's answers are corrected"


# --- idempotency -----------------------------------------------------------------------
class IdempotencyKeyReused(Conflict):
    code, title = "idempotency-key-reused", "Idempotency-Key used before with another request"


class IdempotencyKeyInProgress(Conflict):
    code, title = "idempotency-key-in-progress", "A request with this Idempotency-Key is running"


# --- safety ----------------------------------------------------------------------------
class AdverseEventNotFound(NotFound):
    code, title = "adverse-event-not-found", "Adverse event not found"


class AdverseEventClosed(Conflict):
    """A closed event takes no follow-up nor a second closure (a medical review still)."""

    code, title = "adverse-event-closed", "The adverse event is closed"


class DeadlineNotOpen(Conflict):
    """A reporting deadline that does not apply to the event, or was met already."""

    code, title = "deadline-not-open", "This reporting deadline is not open"


# --- safety: protocol deviations ---------------------------------------------------------
class DeviationNotFound(NotFound):
    code, title = "deviation-not-found", "Protocol deviation not found"


class DeviationStateConflict(Conflict):
    """A decision about a deviation that is no longer a proposal, or a follow-up of one
    that is not confirmed (versions are added, never changed)."""

    code, title = "deviation-state-conflict", "The deviation is not in a state that allows this"


class AlternateContactNotFound(NotFound):
    code, title = "alternate-contact-not-found", "Alternate contact not found"


class AlternateContactGone(Conflict):
    """An alternate contact already removed (or purged at study close)."""

    code, title = "alternate-contact-gone", "The alternate contact was already removed"


class SurveyNotMissed(Conflict):
    """A missed-visit reason for a survey that is not missed (open, done, cancelled...)."""

    code, title = "survey-not-missed", "The survey is not missed"
