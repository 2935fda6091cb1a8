"""Adverse events and protocol deviations written straight through the models (the
events service is built beside the exports), for the export tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.auth.models import User
from app.db.engine import Database
from app.participants.models import Participant
from app.safety.models import (
    AdverseEvent,
    AdverseEventVersion,
    ProtocolDeviation,
    ProtocolDeviationVersion,
)
from app.studies import service as studies
from app.studies.models import Study
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import local_date

AE_TERM = "SECRET-AE-TERM-Overdose"
AE_NOTE = "SECRET-AE-NOTE-called-her-mother"
PD_TEXT = "SECRET-PD-DESCRIPTION"
PD_ACTION = "SECRET-PD-CORRECTIVE"


@dataclass(frozen=True)
class Seeded:
    """What was written: the codes of the people concerned and their randomization day."""

    serious: str  # the participant with the serious, reviewed, closed event
    mild: str  # the participant with the mild event (partial onset date)
    randomized_on: dict[str, date]
    hidden_deviation: int  # PD number of a deviation about an arm-only survey
    shown_deviation: int  # PD number of a deviation about a survey every arm has


def facts(db: Database, slug: str, codes: list[str]) -> Seeded:
    """What `seed_safety(db, slug, codes)` wrote, for the tests to compare."""
    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study).where(Study.slug == slug)).one()
        zone = studies.definition_of(study).zone()
        rows = session.execute(
            sa.select(Participant.code, Participant.randomized_at).where(
                Participant.study_id == study.id, Participant.code.in_(codes)
            )
        )
        day0 = {code: local_date(at, zone) for code, at in rows if at is not None}
    return Seeded(
        serious=codes[0], mild=codes[1], randomized_on=day0, hidden_deviation=4, shown_deviation=5
    )


def seed_safety(db: Database, slug: str, codes: list[str]) -> None:
    """Two events (one serious, followed up, reviewed and closed; one mild with a
    partial onset date) and deviations in every state, of the first participants."""
    with db.begin() as session:
        study = session.scalars(sa.select(Study).where(Study.slug == slug)).one()
        zone = studies.definition_of(study).zone()
        actor = session.scalars(sa.select(User.id).order_by(User.id)).first()
        assert actor is not None
        people = {
            p.code: p
            for p in session.scalars(
                sa.select(Participant).where(
                    Participant.study_id == study.id, Participant.code.in_(codes)
                )
            )
        }
        day0 = {c: local_date(p.randomized_at, zone) for c, p in people.items() if p.randomized_at}
        now = datetime.now(UTC)
        serious, mild = codes[0], codes[1]
        s0 = day0[serious]

        def event(code: str, number: int, versions: list[tuple[str, dict[str, Any]]]) -> None:
            person = people[code]
            row = AdverseEvent(
                study_id=study.id,
                site_id=person.site_id,
                participant_id=person.id,
                number=number,
                versions=len(versions),
                closed=versions[-1][0] == "closure",
                opened_at=now,
                opened_by=actor,
            )
            session.add(row)
            session.flush()
            for n, (kind, fields) in enumerate(versions, start=1):
                session.add(
                    AdverseEventVersion(
                        event_id=row.id,
                        number=n,
                        kind=kind,
                        fields=fields,
                        recorded_at=now,
                        recorded_by=actor,
                    )
                )

        event(
            serious,
            1,
            [
                (
                    "initial",
                    {
                        "AETERM": AE_TERM,
                        "AESTDTC": (s0 + timedelta(days=3)).isoformat(),
                        "aware_on": (s0 + timedelta(days=4)).isoformat(),
                        "AEDECOD": "Intentional overdose",
                        "AEBODSYS": "Injury, poisoning and procedural complications",
                        "meddra_version": "27.1",
                        "AESEV": "severe",
                        "AESER": True,
                        "AESHOSP": True,
                        "AEREL": "possible",
                        "AERELPROC": "unlikely",
                        "AEEXPECT": True,
                        "AEOUT": "recovering",
                        "AEACN": "intervention_interrupted",
                        "unanticipated": False,
                        "note": AE_NOTE,
                    },
                ),
                (
                    "follow_up",
                    {"AEENDTC": (s0 + timedelta(days=40)).isoformat()[:7], "AEOUT": "recovered"},
                ),
                ("review", {"AEREL": "probable", "AERELPROC": "not_related", "AEEXPECT": False}),
                ("closure", {"note": AE_NOTE}),
            ],
        )
        event(
            mild,
            2,
            [
                (
                    "initial",
                    {
                        "AETERM": AE_TERM,
                        "AESTDTC": str(day0[mild].year),
                        "aware_on": (day0[mild] - timedelta(days=2)).isoformat(),
                        "AESEV": "mild",
                        "AESER": False,
                        "AEREL": "not_related",
                        "AEEXPECT": False,
                        "AEOUT": "unknown",
                        "AEACN": "none",
                    },
                )
            ],
        )

        def deviation(
            code: str, number: int, state: str, kinds: list[str], source: str | None = None
        ) -> None:
            person = people[code]
            row = ProtocolDeviation(
                study_id=study.id,
                site_id=person.site_id,
                participant_id=person.id,
                number=number,
                state=state,
                source=source,
                versions=len(kinds),
                created_at=now,
                created_by=None if source else actor,
            )
            session.add(row)
            session.flush()
            fields = {
                "category": "outside_window" if source else "wrong_arm",
                "occurred_on": (day0[code] + timedelta(days=number)).isoformat(),
                "description": PD_TEXT,
                "important": number == 1,
                "corrective_action": PD_ACTION,
            }
            for n, kind in enumerate(kinds, start=1):
                session.add(
                    ProtocolDeviationVersion(
                        deviation_id=row.id,
                        number=n,
                        kind=kind,
                        fields=fields if n == 1 else {"note": PD_TEXT},
                        recorded_at=now,
                        recorded_by=actor,
                    )
                )

        def survey_of(timepoint: str) -> int:
            found = session.scalars(
                sa.select(SurveyInstance.id)
                .where(
                    SurveyInstance.participant_id.in_([p.id for p in people.values()]),
                    SurveyInstance.timepoint == timepoint,
                )
                .order_by(SurveyInstance.id)
            ).first()
            assert found is not None, timepoint
            return found

        deviation(serious, 1, "confirmed", ["initial"])
        deviation(mild, 2, "dismissed", ["proposed", "dismissal"], "outside_window:survey:-1")
        deviation(mild, 3, "proposed", ["proposed"], "outside_window:survey:-2")
        hidden_survey = survey_of("sessions")
        hidden_owner = session.get(SurveyInstance, hidden_survey)
        assert hidden_owner is not None
        owner = next(c for c, p in people.items() if p.id == hidden_owner.participant_id)
        deviation(
            owner,
            4,
            "confirmed",
            ["proposed", "confirmation"],
            f"outside_window:survey:{hidden_survey}",
        )
        shown = survey_of("month_4")
        deviation(
            mild, 5, "confirmed", ["proposed", "confirmation"], f"outside_window:survey:{shown}"
        )
