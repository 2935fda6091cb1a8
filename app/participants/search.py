"""Finding participants: by code, email or name, and whether they are ready to randomize.

Contact details are sealed at rest. An email is found exactly, through its keyed hash
(`service.find_by_contact`: nothing is decrypted). A name has no index that could match
part of it: the names of the caller's sites are decrypted and compared, at most
NAME_SCAN_LIMIT of them (newest first), and the answer says when the scan stopped there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import and_, exists, func, not_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.auth.permissions import reachable_sites
from app.auth.principal import Principal
from app.participants import service
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.studies import service as studies
from app.studies.models import Study
from app.surveys.models import SurveyInstance

NAME_SCAN_LIMIT = 5000
MAX_QUERY = 200
_CODE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{0,12}){1,3}$")


class Readiness(StrEnum):
    """Enrolled participants, by whether the surveys randomization waits for are done."""

    ready = "ready"  # every survey the study requires before randomizing is completed
    awaiting_baseline = "awaiting_baseline"  # one of them is not completed yet


@dataclass(frozen=True)
class Found:
    """Participants that match, and whether the name scan stopped at its bound."""

    participants: Sequence[Participant]
    scan_stopped: bool = False


def search(session: Session, *, study: Study, user: Principal, text: str, limit: int) -> Found:
    """Participants of the user's sites whose code starts with the text, whose email is
    exactly it, or whose name holds it (case and accents of case aside)."""
    text = text.strip()[:MAX_QUERY]
    if not text:
        return Found([])
    if "@" in text:
        return Found(service.find_by_contact(session, study=study, user=user, email=text)[:limit])
    scoped = _scoped(study, user)
    if _CODE.match(text):
        query = select(Participant).where(
            scoped, func.upper(Participant.code).startswith(text.upper(), autoescape=True)
        )
        by_code = session.scalars(query.order_by(Participant.id).limit(limit)).all()
        if by_code:
            return Found(by_code)
    wanted = text.casefold()
    rows = session.execute(
        select(Participant, Contact.name)
        .join(Contact, Contact.participant_id == Participant.id)
        .where(scoped)
        .order_by(Participant.id.desc())
        .limit(NAME_SCAN_LIMIT + 1)
    ).all()
    matches = [p for p, name in rows[:NAME_SCAN_LIMIT] if wanted in name.casefold()]
    return Found(sorted(matches, key=lambda p: p.id)[:limit], len(rows) > NAME_SCAN_LIMIT)


def by_readiness(
    session: Session,
    *,
    study: Study,
    user: Principal,
    readiness: Readiness,
    site_id: int | None,
    after_id: int,
    limit: int,
) -> Sequence[Participant]:
    """Enrolled participants of the user's sites that are ready to randomize (or still
    wait for a required survey), oldest first, after a cursor."""
    required = studies.definition_of(study).randomization.requires_completed
    done: ColumnElement[bool] = (
        and_(
            *(
                exists().where(
                    SurveyInstance.participant_id == Participant.id,
                    SurveyInstance.timepoint == timepoint,
                    SurveyInstance.completed_at.is_not(None),
                )
                for timepoint in required
            )
        )
        if required
        else Participant.id.is_not(None)
    )
    condition = done if readiness == Readiness.ready else not_(done)
    query = select(Participant).where(
        _scoped(study, user),
        Participant.status == ParticipantStatus.enrolled,
        Participant.id > after_id,
        condition,
    )
    if site_id is not None:
        query = query.where(Participant.site_id == site_id)
    return session.scalars(query.order_by(Participant.id).limit(limit)).all()


def _scoped(study: Study, user: Principal) -> ColumnElement[bool]:
    sites = reachable_sites(user)
    in_study = Participant.study_id == study.id
    return in_study if sites is None else and_(in_study, Participant.site_id.in_(sites))
