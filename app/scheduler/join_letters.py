"""The email to a sign-up a coordinator accepted (SPEC 10): in their language, with the
link of their first survey while it is open, else the word that the team will be in
touch. Never the study's title (subjects show on lock screens) nor why they were held."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.config import Settings
from app.i18n import catalogs
from app.i18n.catalogs import gettext as _
from app.join.models import Applicant, ApplicantState
from app.join.service import baseline_token
from app.scheduler.mail import Letter
from app.studies.models import Study
from app.studies.service import definition_in


def accepted_letter(session: Session, settings: Settings, applicant_id: int) -> Letter | str:
    """The letter, or why it cannot be sent (recorded as failed, shown to coordinators)."""
    applicant = session.get(Applicant, applicant_id)
    if applicant is None or applicant.state != ApplicantState.enrolled:
        return "the sign-up is not enrolled"
    if not applicant.email:
        return "the applicant has no email address"
    assert applicant.participant_id is not None
    language = applicant.language
    study = session.get_one(Study, applicant.study_id)
    title = definition_in(study, language).shown_to_participants()
    token = baseline_token(session, applicant.participant_id)
    with catalogs.speaking(language):
        subject = _("You can now take part: %(study)s") % {"study": title}
        lines = [
            _("Hello,"),
            _("Thank you for signing up for the study “%(study)s”. You are now taking part.")
            % {"study": title},
        ]
        if token is not None:
            lines += [
                _("Your first survey is ready. Open it here:"),
                f"{settings.base_url}/s/{token}",
                _("This link is for you only. Please do not share it."),
            ]
        else:
            lines.append(_("A member of the study team will be in touch with you soon."))
    return Letter([applicant.email], subject, "\n\n".join(lines) + "\n")
