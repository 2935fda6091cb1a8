"""Surveys: scheduled from a participant's enrollment and randomization, filled in
through a personal link, submitted, scored, and screened for safety alerts."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.principal import Principal
from app.db.base import utcnow
from app.db.server_key import keys_of
from app.errors import (
    SurveyAlreadyCompleted,
    SurveyCancelled,
    SurveyClosed,
    SurveyLinkNotReplaceable,
    SurveyLinkReplaced,
    SurveyNotFound,
    SurveyNotOpen,
    SurveyNotOpenYet,
    UnknownSurveyLink,
)
from app.keys import Use
from app.outbox import service as outbox
from app.outbox.models import Channel, MessageKind
from app.studies.definition import Anchor, Instrument, Item, StudyDefinition
from app.studies.models import Study
from app.studies.service import definition_of
from app.surveys import answers as entering
from app.surveys import scheduling
from app.surveys.models import Alert, RetiredLink, SurveyInstance
from app.surveys.scheduling import SurveyStatus, window
from app.surveys.tokens import looks_like_token, survey_token, token_hash


def schedule(
    session: Session,
    *,
    study: Study,
    participant_id: int,
    participant_code: str,
    site_id: int,
    anchor: Anchor,
    anchor_at: datetime,
    arm: str | None = None,
) -> list[SurveyInstance]:
    """Create the participant's surveys of the timepoints anchored to this event
    (enrollment: baseline; randomization: the follow-ups, with the arm's instruments)."""
    definition = definition_of(study)
    zone = definition.zone()
    created = []
    for timepoint in definition.schedule:
        if timepoint.anchor is not anchor:
            continue
        span = window(
            anchor_at,
            zone,
            day=timepoint.day,
            open_before=timepoint.open_before,
            close_after=timepoint.close_after,
        )
        instruments = [
            code for code in timepoint.instruments if _for_arm(definition.instrument(code), arm)
        ]
        if not instruments:
            continue  # every instrument of the timepoint is for other arms
        instance = SurveyInstance(
            study_id=study.id,
            site_id=site_id,
            participant_id=participant_id,
            participant_code=participant_code,
            timepoint=timepoint.code,
            instruments=instruments,
            anchor_at=anchor_at,
            opens_on=span.opens_on,
            closes_on=span.closes_on,
            issue=1,
            token_hash=token_hash(_token(session, participant_id, timepoint.code, 1)),
            answers={},
            created_at=anchor_at,
        )
        session.add(instance)
        created.append(instance)
    session.flush()
    return created


def timepoint_name(code: str) -> str:
    """A timepoint as a person reads it: `month_4` is the "Month 4 survey"."""
    words = code.replace("_", " ").replace("-", " ").strip()
    return f"{words[:1].upper()}{words[1:]} survey"


def _for_arm(instrument: Instrument, arm: str | None) -> bool:
    return instrument.arms is None or (arm is not None and arm in instrument.arms)


def _token(session: Session, participant_id: int, timepoint: str, issue: int) -> str:
    key = keys_of(session).derived(Use.survey_link)
    return survey_token(key, participant_id=participant_id, timepoint=timepoint, issue=issue)


def link_token(session: Session, instance: SurveyInstance) -> str:
    """The current token of the survey's link (derived again: never stored)."""
    return _token(session, instance.participant_id, instance.timepoint, instance.issue)


def instances_of(session: Session, *, participant_id: int) -> Sequence[SurveyInstance]:
    """The participant's surveys, in the order they open."""
    return session.scalars(
        select(SurveyInstance)
        .where(SurveyInstance.participant_id == participant_id)
        .order_by(SurveyInstance.opens_on, SurveyInstance.id)
    ).all()


def status_of(
    instance: SurveyInstance, *, definition: StudyDefinition, now: datetime
) -> SurveyStatus:
    """The survey's status at `now`, derived from its window and events."""
    return scheduling.status_of(instance, now=now, zone=definition.zone())


def completed_timepoints(session: Session, *, participant_id: int) -> set[str]:
    """The timepoints the participant has completed."""
    return set(
        session.scalars(
            select(SurveyInstance.timepoint).where(
                SurveyInstance.participant_id == participant_id,
                SurveyInstance.completed_at.is_not(None),
            )
        )
    )


def cancel_pending(session: Session, *, study: Study, participant_id: int, now: datetime) -> int:
    """Cancel the participant's surveys that are scheduled or open (a withdrawal), and
    kill the links of completed ones (they stay completed: their answers are kept for
    the analysis, but no link shows them again); missed ones stay as they are. How many
    were cancelled."""
    definition = definition_of(study)
    count = 0
    for instance in instances_of(session, participant_id=participant_id):
        state = status_of(instance, definition=definition, now=now)
        if state in (SurveyStatus.scheduled, SurveyStatus.open):
            instance.cancelled_at = now
            count += 1
        elif state is SurveyStatus.completed:
            instance.cancelled_at = now
    session.flush()
    return count


def _locked_instance(session: Session, *, participant_id: int, timepoint: str) -> SurveyInstance:
    instance = session.scalars(
        select(SurveyInstance)
        .where(
            SurveyInstance.participant_id == participant_id,
            SurveyInstance.timepoint == timepoint,
        )
        .with_for_update()
    ).first()
    if instance is None:
        raise SurveyNotFound(f"no survey {timepoint!r} for this participant")
    return instance


def _state(
    session: Session, *, study: Study, participant_id: int, timepoint: str
) -> SurveyStatus | None:
    instance = session.scalars(
        select(SurveyInstance).where(
            SurveyInstance.participant_id == participant_id,
            SurveyInstance.timepoint == timepoint,
        )
    ).first()
    if instance is None:
        return None
    return status_of(instance, definition=definition_of(study), now=utcnow())


def is_replaceable(session: Session, *, study: Study, participant_id: int, timepoint: str) -> bool:
    """Whether the participant has this survey and its link may be replaced now."""
    state = _state(session, study=study, participant_id=participant_id, timepoint=timepoint)
    return state in (SurveyStatus.scheduled, SurveyStatus.open)


def is_open(session: Session, *, study: Study, participant_id: int, timepoint: str) -> bool:
    """Whether the participant has this survey and it is open now."""
    state = _state(session, study=study, participant_id=participant_id, timepoint=timepoint)
    return state is SurveyStatus.open


def record_request(
    session: Session,
    *,
    study: Study,
    participant_code: str,
    timepoint: str,
    action: AuditAction,
    actor: Principal,
) -> None:
    """Audit a request about a survey that changed nothing (the participant has no such
    survey, or it is past replacing): one record of the same action, without changes, so
    that the trail and the counts of /metrics are alike whether or not it acted."""
    audit.record(
        session,
        action,
        actor=actor,
        entity_id=f"{participant_code}:{timepoint}",
        study_id=study.id,
        changes={},
    )


def reissue(
    session: Session, *, study: Study, participant_id: int, timepoint: str, actor: Principal
) -> SurveyInstance:
    """Give the survey a new link; the old one answers 410 from now on."""
    now = audit.lock_chain_head(session).at
    instance = _locked_instance(session, participant_id=participant_id, timepoint=timepoint)
    current = status_of(instance, definition=definition_of(study), now=now)
    if current not in (SurveyStatus.scheduled, SurveyStatus.open):
        raise SurveyLinkNotReplaceable(f"the survey is {current}: its link cannot be replaced")
    session.add(RetiredLink(token_hash=instance.token_hash, instance_id=instance.id))
    instance.issue += 1
    instance.token_hash = token_hash(_token(session, participant_id, timepoint, instance.issue))
    session.flush()
    audit.record(
        session,
        AuditAction.survey_link_reissued,
        actor=actor,
        entity_id=f"{instance.participant_code}:{timepoint}",
        study_id=study.id,
        changes={"issue": (instance.issue - 1, instance.issue)},
    )
    return instance


def resend_invitation(
    session: Session,
    *,
    study: Study,
    participant_id: int,
    timepoint: str,
    actor: Principal,
    channels: Sequence[Channel] = (Channel.email,),
) -> SurveyInstance:
    """Send the participant the invitation to an open survey again (through the outbox,
    with its current link; by each of `channels`, a text with a key of its own); audited.
    409 unless the survey is open."""
    now = audit.lock_chain_head(session).at
    instance = _locked_instance(session, participant_id=participant_id, timepoint=timepoint)
    current = status_of(instance, definition=definition_of(study), now=now)
    if current is not SurveyStatus.open:
        raise SurveyNotOpen(f"the survey is {current}: only an open survey's invitation is sent")
    # One queued at a time: a message about the survey not sent yet (the scheduler's
    # invitation, an earlier resend) carries its current link already (API.md).
    if not outbox.queued_about(session, instance_id=instance.id):
        key = f"survey:{instance.id}:resent:{now.isoformat()}"
        for channel in channels:
            outbox.enqueue(
                session,
                kind=MessageKind.invitation,
                channel=channel,
                dedupe_key=key if channel is Channel.email else f"{key}:{channel}",
                subject_id=instance.id,
                study_id=study.id,
                site_id=instance.site_id,
                participant_code=instance.participant_code,
                now=now,
            )
    audit.record(
        session,
        AuditAction.survey_invitation_resent,
        actor=actor,
        entity_id=f"{instance.participant_code}:{timepoint}",
        study_id=study.id,
    )
    return instance


@dataclass(frozen=True)
class OpenedSurvey:
    """A survey reached through its link, with its study's definition."""

    instance: SurveyInstance
    study: Study
    definition: StudyDefinition
    status: SurveyStatus
    # The language its pages are shown in, once the page has chosen it (`definition`
    # is then the study's definition in that language).
    language: str | None = None

    @property
    def instruments(self) -> list[Instrument]:
        return [self.definition.instrument(code) for code in self.instance.instruments]

    @property
    def items(self) -> list[Item]:
        return [item for instrument in self.instruments for item in instrument.items]


def find(session: Session, *, token: str, now: datetime, for_update: bool = False) -> OpenedSurvey:
    """The survey of a link, whatever its status; UnknownSurveyLink (404) for a link
    that never existed, SurveyLinkGone (410) for one that was replaced."""
    if not looks_like_token(token):
        raise UnknownSurveyLink("no survey has this link")
    hashed = token_hash(token)
    query = select(SurveyInstance).where(SurveyInstance.token_hash == hashed)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    instance = session.scalars(query).first()
    if instance is None:
        retired = session.get(RetiredLink, hashed)
        if retired is not None:
            raise _replaced(session, retired.instance_id)
        raise UnknownSurveyLink("no survey has this link")
    study = session.get_one(Study, instance.study_id)
    definition = definition_of(study)
    state = status_of(instance, definition=definition, now=now)
    if instance.cancelled_at is not None:  # withdrawn: the link is dead, answered or not
        state = SurveyStatus.cancelled
    return OpenedSurvey(instance, study, definition, state)


def _replaced(session: Session, instance_id: int) -> SurveyLinkReplaced:
    """The 410 of a replaced link: whether its participant was sent the newer one (the
    page says so only then), and the study's support text."""
    instance = session.get_one(SurveyInstance, instance_id)
    error = SurveyLinkReplaced("this link was replaced by a newer one")
    error.newer_sent = outbox.link_sent(session, instance_id=instance.id, issue=instance.issue)
    error.support = definition_of(session.get_one(Study, instance.study_id)).support_text
    return error


def ensure_answerable(opened: OpenedSurvey) -> None:
    """Answers may be saved and submitted only while the survey is open."""
    match opened.status:
        case SurveyStatus.scheduled:
            raise SurveyNotOpenYet(f"this survey opens on {opened.instance.opens_on.isoformat()}")
        case SurveyStatus.completed:
            raise SurveyAlreadyCompleted("this survey was already completed: thank you")
        case SurveyStatus.missed:
            raise SurveyClosed(f"this survey closed on {opened.instance.closes_on.isoformat()}")
        case SurveyStatus.cancelled:
            raise SurveyCancelled("this survey was cancelled")


def save(
    session: Session,
    *,
    token: str,
    answers: Mapping[str, Any],
    clear: Collection[str] = (),
    language: str | None = None,
) -> OpenedSurvey:
    """Keep answers given so far (see `answers.save`; `clear`: a page's questions left
    empty); nothing is kept if any is wrong. `language`: the one the pages were in."""
    now = audit.lock_chain_head(session).at
    opened = find(session, token=token, now=now, for_update=True)
    ensure_answerable(opened)
    if language is not None:
        opened.instance.language = language
    entering.save(
        session,
        instance=opened.instance,
        items=opened.items,
        answers=answers,
        clear=clear,
        entry=entering.BY_PARTICIPANT,
        now=now,
    )
    return opened


@dataclass(frozen=True)
class Submitted:
    survey: OpenedSurvey
    alerts: list[Alert]


def submit(
    session: Session, *, token: str, answers: Mapping[str, Any], language: str | None = None
) -> Submitted:
    """Complete the survey: the answers (merged over those saved) must all be valid and
    every required item answered; scores are computed and kept, and every safety rule
    met raises an alert that is emailed to the site's coordinators at once. `language`:
    the one the pages were in."""
    now = audit.lock_chain_head(session).at
    opened = find(session, token=token, now=now, for_update=True)
    ensure_answerable(opened)
    if language is not None:
        opened.instance.language = language
    alerts = entering.submit(
        session,
        instance=opened.instance,
        instruments=opened.instruments,
        rules=opened.definition.alerts,
        answers=answers,
        entry=entering.BY_PARTICIPANT,
        now=now,
        definition=opened.definition,
    )
    return Submitted(opened, alerts)


def view(session: Session, *, token: str) -> OpenedSurvey:
    """The survey of a link as it is now (for reading: the page, the JSON API)."""
    return find(session, token=token, now=utcnow())
