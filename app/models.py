"""Every table, imported in one place for Alembic (autogenerate, `alembic check`)."""

from app.audit.models import AuditChainHead, AuditRecord
from app.auth.models import ApiToken, ConsoleSession, SignInLink, User, UserSite
from app.consent.models import Consent
from app.db.base import Base
from app.db.server_key import ServerKey
from app.engagement.models import EngagementEvent
from app.idempotency.models import IdempotencyKey
from app.incentives.models import GiftCard, IncentiveEntry
from app.join.models import Applicant
from app.outbox.models import OutboxMessage
from app.participants.models import Contact, Participant
from app.randomization.models import Allocation, AllocationTableRow, Stratum
from app.retention.models import AlternateContact, ContactAttempt
from app.safety.models import (
    AdverseEvent,
    AdverseEventVersion,
    ProtocolDeviation,
    ProtocolDeviationVersion,
    SafetyDeadline,
)
from app.studies.models import BlindingKey, Site, Study
from app.surveys.models import Alert, RetiredLink, SurveyInstance
from app.texting.models import SmsReply

__all__ = [
    "AdverseEvent",
    "AdverseEventVersion",
    "Alert",
    "Allocation",
    "AllocationTableRow",
    "AlternateContact",
    "ApiToken",
    "Applicant",
    "AuditChainHead",
    "AuditRecord",
    "Base",
    "BlindingKey",
    "Consent",
    "ConsoleSession",
    "Contact",
    "ContactAttempt",
    "EngagementEvent",
    "GiftCard",
    "IdempotencyKey",
    "IncentiveEntry",
    "OutboxMessage",
    "Participant",
    "ProtocolDeviation",
    "ProtocolDeviationVersion",
    "RetiredLink",
    "SafetyDeadline",
    "ServerKey",
    "SignInLink",
    "Site",
    "SmsReply",
    "Stratum",
    "Study",
    "SurveyInstance",
    "User",
    "UserSite",
]
