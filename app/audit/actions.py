"""The vocabulary of the audit trail: every action, as a dotted name (pure)."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """What happened. The part before the dot names the kind of entity it happened to."""

    user_created = "user.created"
    user_deactivated = "user.deactivated"
    sign_in_link_issued = "user.sign_in_link_issued"
    signed_in = "user.signed_in"
    signed_out = "user.signed_out"
    token_issued = "token.issued"
    tokens_revoked = "token.revoked"
    study_created = "study.created"
    study_activated = "study.activated"
    study_locked = "study.locked"
    allocation_table_loaded = "study.allocation_table_loaded"
    site_created = "site.created"
    participant_screened = "participant.screened"
    participant_enrolled = "participant.enrolled"
    participant_randomized = "participant.randomized"
    participant_withdrawn = "participant.withdrawn"
    participant_unblinded = "participant.unblinded"
    survey_saved = "survey.saved"
    survey_submitted = "survey.submitted"
    survey_answer_corrected = "survey.answer_corrected"
    survey_link_reissued = "survey.link_reissued"
    survey_invitation_resent = "survey.invitation_resent"
    alert_raised = "alert.raised"
    alert_acknowledged = "alert.acknowledged"
    # SPEC 9, safety: each version of an event or deviation is one record.
    adverse_event_opened = "adverse_event.opened"
    adverse_event_versioned = "adverse_event.versioned"  # a follow-up, review or closure
    adverse_event_reported = "adverse_event.reported"  # a deadline met: reported to whom, when
    deviation_recorded = "deviation.recorded"
    deviation_proposed = "deviation.proposed"  # by the system, for a coordinator to decide
    deviation_versioned = "deviation.versioned"  # a follow-up, confirmation or dismissal
    # SPEC 10, remote enrollment and consent.
    applicant_screened = "applicant.screened"  # through the public link (eligible)
    applicant_contact = "applicant.contact"  # contact details given or changed (hashes only)
    applicant_held = "applicant.held"  # signed, and held for a coordinator (why: sealed)
    applicant_accepted = "applicant.accepted"
    applicant_rejected = "applicant.rejected"
    consent_signed = "consent.signed"  # electronic: version, language, document and PDF hashes
    consent_recorded = "consent.recorded"  # taken in person: date, who obtained it
    consent_countersigned = "consent.countersigned"
    consent_pdf_made = "consent.pdf_made"  # the PDF copy made after signing: its SHA-256
    consent_pdf_read = "consent.pdf_read"  # a signed copy opened by staff (it holds the name)
    participant_verified = "participant.verified"  # a self-reported diagnosis checked
    # The date of birth asked again at the first survey: matched or mismatched.
    participant_date_of_birth_checked = "participant.date_of_birth_checked"
    consent_call_done = "consent.call_done"  # a coordinator went over the consent by phone
    study_amended = "study.amended"  # a consent version added to an active study
    # The DSMB's closed part (by group) and the adverse events by arm: read like an export.
    report_dsmb_closed = "report.dsmb_closed"
    report_ctgov_adverse_events = "report.ctgov_adverse_events"
    # SPEC 11, retention.
    participant_texting = "participant.texting"  # consent to texting, channel, time zone
    sms_received = "sms.received"  # a text from a participant (its kind; never its words)
    sms_stopped = "sms.stopped"  # STOP: no more texts to this participant
    sms_reply_handled = "sms.reply_handled"  # a coordinator answered or dealt with it
    participant_contact_corrected = "participant.contact_corrected"  # which fields, no values
    contact_logged = "contact.logged"  # an attempt to reach a participant
    alternate_contact_added = "alternate_contact.added"
    alternate_contact_removed = "alternate_contact.removed"
    alternate_contacts_purged = "alternate_contact.purged"  # at study close
    survey_missed_reason = "survey.missed_reason"
    incentive_earned = "incentive.earned"
    incentive_held = "incentive.held"
    incentive_approved = "incentive.approved"
    incentive_issued = "incentive.issued"
    incentive_redeemed = "incentive.redeemed"
    incentive_voided = "incentive.voided"
    incentive_card_shown = "incentive.card_shown"  # an issued card's code shown again
    gift_cards_loaded = "gift_card.loaded"
    incentives_vendor_file = "incentive.vendor_file"  # the payment vendor's CSV written
    incentives_vendor_file_again = "incentive.vendor_file_again"  # a past one made again
    engagement_imported = "engagement.imported"
    export_started = "export.started"
    export_completed = "export.completed"
    export_aborted = "export.aborted"
    keys_rotated = "keys.rotated"
    database_restored = "database.restored"  # a backup put back (`trialdesk restore`)

    @property
    def entity_type(self) -> str:
        """`participant` for `participant.enrolled`: the kind of entity the record is about."""
        return self.value.split(".", 1)[0]
