"""The consent emails, written when sent in the person's language: the signed consent's
PDF copy (`consent_copy`), and the invitation to re-consent after an amendment
(`reconsent`). Like every participant message they name the study by its
participant title only, and carry no answer.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.consent.models import Consent
from app.consent.service import latest_consent, reconsent_link
from app.i18n import catalogs
from app.i18n.catalogs import gettext as _
from app.join.models import Applicant
from app.outbox.models import MessageStatus
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.scheduler.mail import Attachment, Letter
from app.studies.models import Study
from app.studies.service import definition_in, definition_of


def consent_copy(
    session: Session, settings: Settings, consent_id: int
) -> Letter | tuple[MessageStatus, str]:
    """The signed consent's PDF, to the person who signed it; or why it is not sent."""
    consent = session.get(Consent, consent_id)
    if consent is None or consent.pdf is None:
        return MessageStatus.failed, "the consent or its PDF no longer exists"
    address = _address(session, consent)
    if not address:
        return MessageStatus.failed, "no email address to send the consent copy to"
    study = session.get_one(Study, consent.study_id)
    definition = definition_in(study, consent.language)  # the study's texts in that language
    with catalogs.speaking(consent.language):
        title = definition.shown_to_participants()
        subject = _("Your signed consent: %(study)s") % {"study": title}
        body = _(
            "Hello,\n\nThank you for agreeing to take part in the study \u201c%(study)s\u201d."
            "\n\nA copy of the consent form you signed is attached to this email "
            "(version %(version)s). Please keep it. It shows what you agreed to, and when.\n\n"
            "You can stop taking part at any time, without giving a reason.\n"
        ) % {"study": title, "version": consent.version}
        body += f"\n{definition.support_text}\n" if definition.support_text else ""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", consent.version)
    pdf = Attachment(f"consent-{name}.pdf", "application/pdf", consent.pdf)
    return Letter([address], subject, body, attachments=(pdf,))


def reconsent(
    session: Session, settings: Settings, participant_id: int
) -> Letter | tuple[MessageStatus, str]:
    """The invitation to read and sign the study's new consent version, with the
    participant's link; skipped if they signed it (or left) since it was queued."""
    participant = session.get(Participant, participant_id)
    if participant is None:
        return MessageStatus.failed, "the participant no longer exists"
    study = session.get_one(Study, participant.study_id)
    definition = definition_of(study)
    active = definition.consent.active()
    if active is None:
        return MessageStatus.skipped, "the study has no consent document"
    if participant.status == ParticipantStatus.withdrawn:
        return MessageStatus.skipped, "the participant has withdrawn"
    latest = latest_consent(session, participant_id=participant.id)
    if latest is not None and latest.version == active.version:
        return MessageStatus.skipped, "the participant has signed the new version"
    contact = session.get(Contact, participant.id)
    if contact is None or not contact.email:
        return MessageStatus.failed, "the participant has no email address"
    language = participant.language if participant.language in active.texts else None
    language = language or definition.languages[0]
    definition = definition_in(study, language)  # the study's texts in that language
    with catalogs.speaking(language):
        title = definition.shown_to_participants()
        subject = _("Please read the updated consent form: %(study)s") % {"study": title}
        body = _(
            "Hello,\n\nThe information about the study \u201c%(study)s\u201d has been updated "
            "(version %(version)s). Please read it and tell us whether you agree to go on "
            "taking part:\n%(link)s\n\n"
            "This link is for you only. Please do not share it.\n"
        ) % {
            "study": title,
            "version": active.version,
            "link": reconsent_link(session, settings.base_url, participant.id, active.version),
        }
        body += f"\n{definition.support_text}\n" if definition.support_text else ""
    return Letter([contact.email], subject, body)


def _address(session: Session, consent: Consent) -> str | None:
    if consent.participant_id is not None:
        contact = session.get(Contact, consent.participant_id)
        if contact is not None and contact.email:
            return contact.email
    if consent.applicant_id is not None:
        email = session.scalar(select(Applicant.email).where(Applicant.id == consent.applicant_id))
        return email or None
    return None
