"""The DSMB report read from the database, and the adverse-event tables shaped like
ClinicalTrials.gov's results module.

Made to be fast on a large trial (10,000 participants, 2,000 events): counts of people
come from one query each, the versions of every event (sealed at rest) are read and
opened in one query and folded here, and arms are opened only for the closed part.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.permissions import Permission, has_permission
from app.auth.principal import Principal, Role
from app.db.base import utcnow
from app.db.engine import Database
from app.engagement import service as engagement
from app.engagement.usage import GroupUsage, Summary, group_usage
from app.errors import Conflict, Forbidden
from app.exports.formats import cell
from app.exports.layout import exported_timepoints
from app.participants.models import Participant
from app.randomization import blinding
from app.randomization.models import Allocation
from app.reports import dsmb
from app.reports.dsmb import Column, DsmbReport, Grouping, GroupKey, Inputs, Part, Person
from app.reports.service import survey_counts
from app.safety.deviation_rules import DeviationVersion, DeviationVersionKind, fold_deviation
from app.safety.events import EventState, Version, VersionKind, fold, is_death, is_serious
from app.safety.labels import organ_class as organ_class_of
from app.safety.models import (
    AdverseEvent,
    AdverseEventVersion,
    ProtocolDeviation,
    ProtocolDeviationVersion,
)
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from app.studies.lifecycle import StudyStatus
from app.studies.models import Site, Study
from app.surveys.service import timepoint_name


class ClosedPartRefused(Forbidden):
    code, title = "dsmb-closed-refused", "The closed part is for the DSMB's closed session"


class StudyNotLocked(Conflict):
    code, title = "study-not-locked", "The study is not locked yet"


def may_read_closed(user: Principal, definition: StudyDefinition) -> bool:
    """The closed part: DSMB members (what the role is for), and the unblinded statistician
    and admins when the study shows them arms (a role the study keeps blind reads no count
    by group and no key to the groups, as it gets no unblinded export: SPEC 6b); never
    coordinators, whatever the study's `arm_visible_to` says (ICH E9; FDA guidance on
    DMCs)."""
    if not has_permission(user.role, Permission.read_dsmb_closed):
        return False
    return user.role is Role.dsmb_member or blinding.policy_for(user.role, definition).arms


def report(
    db: Database, session: Session, *, study: Study, user: Principal, part: Part, fmt: str
) -> DsmbReport:
    """The report's part for this user; the closed part is audited (`report.dsmb_closed`)
    in a transaction of its own, committed before anything of it is read."""
    if part is Part.closed:
        if not may_read_closed(user, studies.definition_of(study)):
            raise ClosedPartRefused(
                f"the {user.role} role may not read this study's DSMB closed part"
            )
        with db.begin() as write:
            audit.record(
                write,
                AuditAction.report_dsmb_closed,
                actor=user,
                entity_id=f"{study.slug}:dsmb",
                study_id=study.id,
                changes={"format": (None, fmt)},
            )
    elif not has_permission(user.role, Permission.read_dsmb_open):
        raise Forbidden(f"the {user.role} role may not read the DSMB report")
    return dsmb_report(session, study=study, part=part)


def dsmb_report(
    session: Session, *, study: Study, part: Part, now: datetime | None = None
) -> DsmbReport:
    """The report's part, whoever asks (callers check who may: `report`). The open part
    depends on no arm: the same whoever is in which arm."""
    definition = studies.definition_of(study)
    zone = definition.zone()
    now = now or utcnow()
    allocated = _allocated(session, study=study, part=part)
    key: list[GroupKey] = []
    if part is Part.closed:
        letters = dsmb.group_letters(
            studies.blinding_key_of(session, study), [a.code for a in definition.arms]
        )
        ordered = sorted(definition.arms, key=lambda a: letters[a.code])
        key = [GroupKey(letters[a.code], a.code, a.label) for a in ordered]
        groups = [Column(k.letter, f"Group {k.letter}") for k in key]
        grouping = Grouping(groups, {pid: letters[arm] for pid, arm in allocated.items()})
        timepoints = list(definition.schedule)
    else:
        grouping = Grouping([], {})
        hidden = blinding.policy_for(blinding.BLIND, definition).hidden_timepoints
        timepoints = [t for t in exported_timepoints(definition) if t.code not in hidden]
    inputs = Inputs(
        people=_people(session, study=study, zone=zone),
        sites=[(s.code, s.name) for s in sorted(study.sites, key=lambda s: s.code)],
        surveys=survey_counts(
            session,
            study=study,
            definition=definition,
            arm_of=grouping.group_of,
            pooled=None if grouping.split else dsmb.TOTAL,
        ),
        timepoints=[(t.code, timepoint_name(t.code).removesuffix(" survey")) for t in timepoints],
        deviations=_deviations(session, study=study),
        events=events_of(session, study=study),
        usage=_usage(session, study=study, grouping=grouping, now=now)
        if part is Part.closed
        else None,
    )
    return dsmb.build(
        inputs,
        part=part,
        grouping=grouping,
        study_title=study.title,
        study_slug=study.slug,
        time_zone=definition.timezone,
        generated_at=now,
        generated_on=now.astimezone(zone).date(),
        activated_on=study.activated_at.astimezone(zone).date() if study.activated_at else None,
        locked_on=study.locked_at.astimezone(zone).date() if study.locked_at else None,
        key=key,
    )


def _usage(
    session: Session, *, study: Study, grouping: Grouping, now: datetime
) -> dict[str, GroupUsage]:
    """Use of the intervention by group letter, and in total (closed part only)."""
    found = engagement.summaries(session, study=study)
    by_letter: dict[str, list[Summary]] = {c.code: [] for c in grouping.groups}
    for summary in found:
        by_letter[grouping.group_of[summary.participant_id]].append(summary)
    usage = {letter: group_usage(people, now=now) for letter, people in by_letter.items()}
    usage[dsmb.TOTAL] = group_usage(found, now=now)
    return usage


def _allocated(session: Session, *, study: Study, part: Part) -> dict[int, str]:
    """Participant id → arm for the closed part; → "" for the open part, whose arms are
    neither needed nor opened."""
    if part is Part.closed:
        rows = session.execute(
            select(Allocation.participant_id, Allocation.arm).where(Allocation.study_id == study.id)
        )
        return {pid: arm for pid, arm in rows}
    ids = session.scalars(select(Allocation.participant_id).where(Allocation.study_id == study.id))
    return dict.fromkeys(ids, "")


def _people(session: Session, *, study: Study, zone: ZoneInfo) -> list[Person]:
    """Every participant, with the month of their randomization in the study's time
    zone: read as the UTC hour's text (`YYYY-MM-DD HH`), each hour worked out once, so
    10,000 timestamps are not each parsed and converted."""
    rows = session.execute(
        select(
            Participant.id,
            Site.code,
            Participant.status,
            Participant.enrolled_at.is_not(None),
            _utc_hour(session, Participant.randomized_at),
            Participant.withdrawal_kind,
        )
        .join(Site, Site.id == Participant.site_id)
        .where(Participant.study_id == study.id)
        .execution_options(yield_per=2000)
    )
    months: dict[str, str] = {}
    people = []
    for pid, site, status, enrolled, hour, kind in rows:
        month = None
        if hour is not None:
            month = months.get(hour)
            if month is None:
                at = datetime.strptime(hour, "%Y-%m-%d %H").replace(tzinfo=UTC)
                month = months[hour] = f"{at.astimezone(zone):%Y-%m}"
        people.append(Person(pid, site, status, bool(enrolled), month, kind))
    return people


def _utc_hour(session: Session, column: Any) -> Any:
    """The UTC hour of a timestamp as text, `YYYY-MM-DD HH` (SQLite keeps UTC text)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.substr(column, 1, 13)


def events_of(session: Session, *, study: Study) -> list[tuple[int, EventState]]:
    """(participant id, state) of every adverse event of the study: every version read
    (and opened) in one query, folded per event."""
    rows = session.execute(
        select(
            AdverseEvent.id,
            AdverseEvent.participant_id,
            AdverseEventVersion.number,
            AdverseEventVersion.kind,
            AdverseEventVersion.fields,
        )
        .join(AdverseEventVersion, AdverseEventVersion.event_id == AdverseEvent.id)
        .where(AdverseEvent.study_id == study.id)
        .order_by(AdverseEvent.id)
        .execution_options(yield_per=2000)
    )
    versions: defaultdict[int, list[Version]] = defaultdict(list)
    owner: dict[int, int] = {}
    for event_id, pid, number, kind, fields in rows:
        owner[event_id] = pid
        versions[event_id].append(Version(number, VersionKind(kind), fields or {}))
    return [(owner[e], fold(vs)) for e, vs in versions.items()]


def _deviations(session: Session, *, study: Study) -> list[tuple[int, Any]]:
    rows = session.execute(
        select(
            ProtocolDeviation.id,
            ProtocolDeviation.participant_id,
            ProtocolDeviationVersion.number,
            ProtocolDeviationVersion.kind,
            ProtocolDeviationVersion.fields,
        )
        .join(
            ProtocolDeviationVersion, ProtocolDeviationVersion.deviation_id == ProtocolDeviation.id
        )
        .where(ProtocolDeviation.study_id == study.id)
        .execution_options(yield_per=2000)
    )
    versions: defaultdict[int, list[DeviationVersion]] = defaultdict(list)
    owner: dict[int, int] = {}
    for deviation_id, pid, number, kind, fields in rows:
        owner[deviation_id] = pid
        versions[deviation_id].append(
            DeviationVersion(number, DeviationVersionKind(kind), fields or {})
        )
    return [(owner[d], fold_deviation(vs)) for d, vs in versions.items()]


# ClinicalTrials.gov's adverse-event module, as CSV files in a zip.

CTGOV_FILES = (
    "all_cause_mortality.csv",
    "serious_adverse_events.csv",
    "other_adverse_events.csv",
    "README.txt",
)


def may_read_ctgov(user: Principal, definition: StudyDefinition) -> bool:
    """Roles the study shows arms to, that read the closed part or the unblinded export."""
    shows_arms = blinding.policy_for(user.role, definition).arms
    return shows_arms and (
        has_permission(user.role, Permission.read_dsmb_closed)
        or has_permission(user.role, Permission.export_unblinded)
    )


def ctgov_adverse_events(
    db: Database, session: Session, *, study: Study, user: Principal, threshold: float
) -> bytes:
    """A zip of the CSV tables of ClinicalTrials.gov's adverse-event module, by arm, once
    the study is locked (audited as `report.ctgov_adverse_events`)."""
    definition = studies.definition_of(study)
    if not may_read_ctgov(user, definition):
        raise Forbidden(f"the {user.role} role may not read the adverse events by arm")
    if study.status != StudyStatus.locked:
        raise StudyNotLocked("the tables by arm are made once the study is locked")
    with db.begin() as write:
        audit.record(
            write,
            AuditAction.report_ctgov_adverse_events,
            actor=user,
            entity_id=f"{study.slug}:ctgov",
            study_id=study.id,
            changes={"threshold": (None, threshold)},
        )
    arm_of = _allocated(session, study=study, part=Part.closed)
    died = session.scalars(
        select(Participant.id).where(
            Participant.study_id == study.id, Participant.withdrawal_kind == "died"
        )
    )
    at_risk = Counter(arm_of.values())
    deaths_of: defaultdict[str, set[int]] = defaultdict(set)
    for pid in died:
        if pid in arm_of:
            deaths_of[arm_of[pid]].add(pid)
    pid_events = [  # of randomized participants only
        (pid, arm_of[pid], state) for pid, state in events_of(session, study=study) if pid in arm_of
    ]
    for pid, arm, state in pid_events:
        if is_death(state.effective):
            deaths_of[arm].add(pid)
    arms = [(a.code, a.label) for a in definition.arms]
    files = {
        "all_cause_mortality.csv": _csv(
            ["arm", "arm_label", "deaths", "at_risk"],
            [[code, label, len(deaths_of[code]), at_risk[code]] for code, label in arms],
        ),
        "serious_adverse_events.csv": _csv(*_by_term(pid_events, arms, at_risk, serious=True)),
        "other_adverse_events.csv": _csv(
            *_by_term(pid_events, arms, at_risk, serious=False, threshold=threshold)
        ),
        "README.txt": _readme(study, threshold).encode(),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in CTGOV_FILES:
            archive.writestr(name, files[name])
    return buffer.getvalue()


_TERM_COLUMNS = [
    "term",
    "organ_class",
    "arm",
    "arm_label",
    "affected",
    "at_risk",
    "events",
]


def _by_term(
    events: Sequence[tuple[int, str, EventState]],
    arms: Sequence[tuple[str, str]],
    at_risk: Mapping[str, int],
    *,
    serious: bool,
    threshold: float = 0.0,
) -> tuple[list[str], list[list[Any]]]:
    """Per (term, organ class) and arm: participants affected, at risk, events. A term of
    other (non-serious) events is listed when, in some arm, the share affected reaches
    the threshold (percent; 0: every term)."""
    affected: defaultdict[tuple[str, str], defaultdict[str, set[int]]] = defaultdict(
        lambda: defaultdict(set)
    )
    counted: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for pid, arm, state in events:
        fields = state.effective
        if is_serious(fields) != serious:
            continue
        term = str(fields.get("AEDECOD") or "").strip() or dsmb.NOT_CODED
        organ_class = organ_class_of(str(fields.get("AEBODSYS") or "")) or dsmb.NOT_CODED
        affected[term, organ_class][arm].add(pid)
        counted[term, organ_class][arm] += 1
    rows: list[list[Any]] = []
    for term, organ_class in sorted(affected, key=lambda k: (k[1].casefold(), k[0].casefold())):
        people = affected[term, organ_class]
        if threshold > 0 and not any(
            at_risk.get(arm) and 100 * len(people[arm]) / at_risk[arm] >= threshold
            for arm, _ in arms
        ):
            continue
        for code, label in arms:
            rows.append(
                [
                    term,
                    organ_class,
                    code,
                    label,
                    len(people[code]),
                    at_risk.get(code, 0),
                    counted[term, organ_class][code],
                ]
            )
    return _TERM_COLUMNS, rows


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file as the exports write them (UTF-8, CRLF, cells escaped by `cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return buffer.getvalue().encode()


def _readme(study: Study, threshold: float) -> str:
    return (
        f"Adverse events of {study.title}, by arm, shaped like ClinicalTrials.gov's "
        "adverse-event results module.\n\n"
        "at_risk: participants randomized to the arm (every one, withdrawn or not).\n"
        "all_cause_mortality.csv: participants who died, from an adverse event with a "
        "fatal outcome (or AESDTH) or recorded as having died when leaving the study.\n"
        "serious_adverse_events.csv and other_adverse_events.csv: per MedDRA term "
        "(AEDECOD) and organ class (AEBODSYS), 'Not coded' when missing: affected = "
        "participants with at least one such event, events = how many such events.\n"
        f"Frequency threshold of other adverse events: {threshold:g}% (a term is listed "
        "when, in some arm, that share of the participants at risk was affected; 0: "
        "every term).\n"
        "Events of participants never randomized are not counted.\n"
    )
