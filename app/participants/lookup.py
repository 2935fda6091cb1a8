"""Reading participants: as the user may see them (by code, by list, by contact), and
as `verify` checks every allocation against them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.auth.permissions import may_access_site, reachable_sites
from app.auth.principal import Principal
from app.db.sealed import keyed_hash
from app.db.server_key import keys_of
from app.errors import FieldProblem, Forbidden, InvalidInput, ParticipantNotFound
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.randomization import service as randomization
from app.randomization.verification import Finding, ParticipantFacts
from app.studies import service as studies
from app.studies.models import Study


def get_participant(
    session: Session, *, study: Study, code: str, user: Principal, for_update: bool = False
) -> Participant:
    """The participant, if the user may see it (a coordinator: own sites only, else 404);
    with `for_update`, its row stays locked to the end of the transaction."""
    query = select(Participant).where(Participant.study_id == study.id, Participant.code == code)
    if for_update:
        query = query.with_for_update(of=Participant).execution_options(populate_existing=True)
    participant = session.scalars(query).first()
    if participant is None or not may_access_site(user, participant.site_id):
        raise ParticipantNotFound(f"no participant {code!r}")
    return participant


def list_participants(
    session: Session,
    *,
    study: Study,
    user: Principal,
    site: str | None,
    status: ParticipantStatus | None,
    after_id: int,
    limit: int,
) -> Sequence[Participant]:
    """Participants the user may see, oldest first, after a cursor."""
    query = select(Participant).where(Participant.study_id == study.id, Participant.id > after_id)
    if site is not None:
        site_row = studies.find_site(study, site)
        if site_row is None:
            raise InvalidInput(
                [FieldProblem(("site",), f"no site {site!r} in this study")], part="query"
            )
        if not may_access_site(user, site_row.id):
            raise Forbidden(f"you are not a coordinator of site {site_row.code}")
        query = query.where(Participant.site_id == site_row.id)
    else:
        sites = reachable_sites(user)
        if sites is not None:
            query = query.where(Participant.site_id.in_(sites))
    if status is not None:
        query = query.where(Participant.status == status)
    return session.scalars(query.order_by(Participant.id).limit(limit)).all()


def find_by_contact(
    session: Session,
    *,
    study: Study,
    user: Principal,
    email: str | None = None,
    phone: str | None = None,
) -> Sequence[Participant]:
    """Participants of the user's sites whose email or phone is exactly this one, found
    through the keyed hashes beside the sealed contact details (nothing is decrypted)."""
    keys = keys_of(session)
    wanted = [
        column == digest
        for column, digest in (
            (Contact.email_index, keyed_hash(keys, "email", email)),
            (Contact.phone_index, keyed_hash(keys, "phone", phone)),
        )
        if digest is not None
    ]
    if not wanted:
        return []
    query = (
        select(Participant)
        .join(Contact, Contact.participant_id == Participant.id)
        .where(Participant.study_id == study.id, or_(*wanted))
    )
    sites = reachable_sites(user)
    if sites is not None:
        query = query.where(Participant.site_id.in_(sites))
    return session.scalars(query.order_by(Participant.id)).all()


def verify_allocations(session: Session, *, study: Study) -> list[Finding]:
    """Re-derive every allocation of the study and check it against its participants."""
    participants = {
        p.id: ParticipantFacts(code=p.code, stratum=p.stratum, was_randomized=p.was_randomized)
        for p in session.scalars(select(Participant).where(Participant.study_id == study.id))
    }
    return randomization.verify(
        session,
        study_id=study.id,
        slug=study.slug,
        plan=studies.plan_of(study),
        secret=studies.secret_of(session, study),
        commitment=study.commitment,
        participants=participants,
    )
