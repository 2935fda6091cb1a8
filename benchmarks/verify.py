"""`trialdesk verify` on a large study: 10,000 participants with 3 completed surveys each.

Run from the project root:

    python benchmarks/verify.py [--participants 10000] [--skip-postgres] [--skip-sqlite]

For each backend (SQLite always; PostgreSQL when it answers and --skip-postgres is not
given): a fresh database migrated to head, the demo loaded (for its admin), the study of
`benchmarks/export.py` (three timepoints, one instrument of 40 choice items and a sum
score) created with sites PHL and PIT and activated through the services. Then the
participants are written in batches of 500, one transaction each: the participant, the
contact, the allocation (the slot re-derived from the study's secret, as the service
takes it), three completed survey instances with answers and scores; and the audit
records the services would write for them (`participant.screened`, `.enrolled` with the
contact, `.randomized`, three `survey.submitted` with answers and scores), through
`audit.record`: MACed, sealed and anchored as in production.

Then `trialdesk verify --study export-bench` runs as a child process and is timed (wall
clock; its peak resident memory from the kernel). It must exit 0: every allocation
re-derived, the chain re-MACed, the anchors checked, the trail replayed against every
row. Prints records, seconds, records per second and the peak memory.
Exit status: 0 when measured; 1 when it could not run; 2 when verify did not pass.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from sqlalchemy import func, insert, select, update

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.models import AuditRecord
from app.auth.models import User
from app.config import Settings
from app.db.base import utcnow
from app.db.engine import Database
from app.db.schema import alembic_config
from app.demo import load_demo
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.randomization.blocks import sequence
from app.randomization.models import Allocation, Stratum
from app.studies import service as studies
from app.studies.models import Site, Study
from app.studies.pseudonyms import pseudonym
from app.studies.validation import parse_definition
from app.surveys.models import SurveyInstance
from app.surveys.scheduling import window
from app.surveys.scoring import scores
from app.surveys.service import PARTICIPANT, SCORES_CHANGE
from benchmarks.export import ITEMS, SITES, STUDY, TIMEPOINTS, definition, people
from tests import pg

BATCH = 500
SCREENING = {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True}


def build(settings: Settings, count: int) -> int:
    """The study and its participants, with their trail; the number of audit records."""
    command.upgrade(alembic_config(settings.database_url, server_key=settings.server_key), "head")
    db = Database(settings)
    try:
        with db.begin() as session:
            admin = load_demo(session).admin_email
        with db.begin() as session:
            study = studies.create_study(
                session, definition=parse_definition(definition()), actor=None
            )
            for code in SITES:
                studies.add_site(session, study=study, code=code, name=code, actor=None)
            studies.activate_study(session, study=study, actor=None)
        with db.session(write=False) as session:
            study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
            secret, plan = studies.secret_of(session, study), studies.plan_of(study)
            instrument = studies.definition_of(study).instruments[0]
            key = studies.blinding_key_of(session, study)
            sites = {s.code: s.id for s in session.scalars(select(Site))}
            admin_id = session.scalars(select(User.id).where(User.email == admin)).one()
            zone = studies.definition_of(study).zone()
        everyone = people(count, first_id=1, start=utcnow() - timedelta(days=800))
        totals: dict[str, int] = {}
        for p in everyone:
            totals[p.stratum] = max(totals.get(p.stratum, 0), p.sequence)
        slots = {
            k: sequence(secret=secret, stratum=k, count=n, sizes=plan.block_sizes, arms=plan.arms)
            for k, n in totals.items()
        }
        with db.begin() as session:
            for k, n in totals.items():
                last = slots[k][-1]
                session.execute(
                    insert(Stratum).values(
                        study_id=study.id,
                        key=k,
                        allocated=n,
                        last_block=last.block,
                        last_block_size=last.block_size,
                        last_position=last.position,
                    )
                )
            for code, site_id in sites.items():
                issued = sum(1 for p in everyone if p.site == code)
                session.execute(
                    update(Site).where(Site.id == site_id).values(last_participant_number=issued)
                )
        with db.session(write=False) as session:
            strata = {k: i for k, i in session.execute(select(Stratum.key, Stratum.id))}
        for first in range(0, count, BATCH):
            with db.begin() as session:
                for p in everyone[first : first + BATCH]:
                    _one(
                        session,
                        p,
                        study=study,
                        admin_id=admin_id,
                        sites=sites,
                        strata=strata,
                        slot=slots[p.stratum][p.sequence - 1],
                        instrument=instrument,
                        zone=zone,
                        pseudonym=pseudonym(key, p.code),
                    )
            print(f"  {min(first + BATCH, count)} participants written", end="\r", flush=True)
        print()
        with db.session(write=False) as session:
            return int(session.execute(select(func.max(AuditRecord.seq))).scalar_one())
    finally:
        db.dispose()


def _one(
    session: Any,
    p: Any,
    *,
    study: Study,
    admin_id: int,
    sites: dict[str, int],
    strata: dict[str, int],
    slot: Any,
    instrument: Any,
    zone: Any,
    pseudonym: str,
) -> None:
    contact = {
        "name": f"Person {p.code}",
        "email": f"{p.code.lower()}@example.org",
        "phone": "+12155550100",
    }
    person = Participant(
        id=p.id,
        study_id=study.id,
        site_id=sites[p.site],
        code=p.code,
        pseudonym=pseudonym,
        status=ParticipantStatus.randomized,
        screening=dict(SCREENING),
        ineligible_reasons=None,
        strata={"diagnosis": p.diagnosis},
        stratum=p.stratum,
        consent_version="1.0",
        screened_at=p.enrolled_at,
        enrolled_at=p.enrolled_at,
        randomized_at=p.randomized_at,
        created_by=admin_id,
    )
    session.add(person)
    session.add(Contact(participant_id=p.id, **contact))
    session.add(
        Allocation(
            study_id=study.id,
            stratum_id=strata[p.stratum],
            participant_id=p.id,
            participant_code=p.code,
            sequence=p.sequence,
            block=slot.block,
            block_size=slot.block_size,
            position=slot.position,
            arm=slot.arm,
            randomized_by=admin_id,
            randomized_at=p.randomized_at,
        )
    )
    rec = audit.record
    rec(
        session,
        AuditAction.participant_screened,
        actor=None,
        entity_id=p.code,
        study_id=study.id,
        changes={
            "site": (None, p.site),
            "screening": (None, SCREENING),
            "eligible": (None, True),
            "ineligible_reasons": (None, None),
        },
    )
    rec(
        session,
        AuditAction.participant_enrolled,
        actor=None,
        entity_id=p.code,
        study_id=study.id,
        changes={
            "status": (None, ParticipantStatus.enrolled),
            "consent_version": (None, "1.0"),
            "strata": (None, {"diagnosis": p.diagnosis}),
            "contact": (None, contact),
        },
    )
    rec(
        session,
        AuditAction.participant_randomized,
        actor=None,
        entity_id=p.code,
        study_id=study.id,
        changes={
            "status": (ParticipantStatus.enrolled, ParticipantStatus.randomized),
            "stratum": (None, p.stratum),
            "sequence": (None, p.sequence),
            "block": (None, slot.block),
            "position": (None, slot.position),
        },
    )
    for t, (code, anchor, day, before, after, done) in enumerate(TIMEPOINTS):
        anchor_at = p.enrolled_at if anchor == "enrollment" else p.randomized_at
        span = window(anchor_at, zone, day=day, open_before=before, close_after=after)
        answers = {item: (p.id + t + n) % 5 for n, item in enumerate(ITEMS)}
        computed = scores(instrument, answers)
        session.add(
            SurveyInstance(
                study_id=study.id,
                site_id=sites[p.site],
                participant_id=p.id,
                participant_code=p.code,
                timepoint=code,
                instruments=[instrument.code],
                anchor_at=anchor_at,
                opens_on=span.opens_on,
                closes_on=span.closes_on,
                token_hash=secrets.token_hex(32),
                answers=answers,
                scores=computed,
                completed_at=anchor_at + timedelta(days=done),
                created_at=anchor_at,
            )
        )
        rec(
            session,
            AuditAction.survey_submitted,
            actor=None,
            actor_label=PARTICIPANT,
            entity_id=f"{p.code}:{code}",
            study_id=study.id,
            changes={**{k: (None, v) for k, v in answers.items()}, SCORES_CHANGE: (None, computed)},
        )
    session.flush()


def measure(settings: Settings, env: dict[str, str]) -> tuple[float, float, int, str]:
    """Seconds, peak MB, exit code and last line of `trialdesk verify`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "verify", "--study", STUDY],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    seconds = time.perf_counter() - started
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    lines = (done.stdout + done.stderr).strip().splitlines()
    return seconds, peak, done.returncode, "\n".join(lines[-5:])


def run(backend: str, count: int) -> int:
    with tempfile.TemporaryDirectory(prefix="trialdesk-verify-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALDESK_")}
        env["TRIALDESK_STATE_DIR"] = str(Path(tmp) / "state")
        env["TRIALDESK_SCHEDULER"] = "false"
        name = None
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'trialdesk.db'}"
            key = None
        else:
            name = pg.create_database("trialdesk_verify_bench")
            url, key = pg.database_url(name), secrets.token_urlsafe(48)
            env["TRIALDESK_SECRET_KEY"] = key
        env["TRIALDESK_DATABASE_URL"] = url
        try:
            settings = Settings(database_url=url, secret_key=key, state_dir=Path(tmp) / "state")
            started = time.perf_counter()
            records = build(settings, count)
            print(
                f"{backend}: built {count} participants, {records} audit records "
                f"in {time.perf_counter() - started:.0f} s"
            )
            seconds, peak, code, tail = measure(settings, env)
            print(tail)
            print(
                f"{backend}: trialdesk verify: {seconds:.1f} s for {records} records "
                f"({records / seconds:,.0f} records/s), peak {peak:.0f} MB, exit {code}"
            )
            return 0 if code == 0 else 2
        finally:
            if name is not None:
                pg.drop_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    options = parser.parse_args()
    status = 0 if options.skip_sqlite else run("sqlite", options.participants)
    if not options.skip_postgres and pg.available():
        status = max(status, run("postgresql", options.participants))
    return status


if __name__ == "__main__":
    sys.exit(main())
