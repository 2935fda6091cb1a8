"""Crash rounds: drive a real server, SIGKILL it at a random moment, restart it, and
check that nothing answered was lost and nothing was half written. Used by the test
suite (a few rounds) and by `benchmarks/crash_soak.py` (many)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from app.audit.service import verify_chain
from app.db.engine import Database
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Contact, Participant
from app.participants.service import verify_allocations
from app.randomization.models import Allocation
from app.studies.models import Study
from app.surveys.models import SurveyInstance
from tests.helpers import STUDY, bearer, complete_baseline, enrollment
from tests.live import Server, running_server_processes

OPERATIONS = 50
SITES, DIAGNOSES = ("PHL", "PIT"), ("bipolar", "depressive", "schizophrenia_spectrum")


@dataclass
class Answers:
    """What the clients were told: enrolled codes, and codes told randomized."""

    enrolled: set[str] = field(default_factory=set)
    randomized: set[str] = field(default_factory=set)
    answered: int = 0


async def _drive(url: str, token: str, kill_after: int, server: Server) -> Answers:
    answers = Answers()
    killed = asyncio.Event()

    def answered() -> None:
        answers.answered += 1
        if answers.answered >= kill_after and not killed.is_set():
            killed.set()
            server.kill()  # mid-flight: the other requests are cut off where they are

    async def operation(client: httpx.AsyncClient, i: int) -> None:
        try:
            body = enrollment(SITES[i % 2], DIAGNOSES[i % 3])
            made = await client.post(f"/api/v1/studies/{STUDY}/participants", json=body)
            if made.status_code != 201:
                return
            code = made.json()["code"]
            answers.enrolled.add(code)
            answered()
            if await complete_baseline(client, "", token, code) != 200:
                return
            done = await client.post(f"/api/v1/studies/{STUDY}/participants/{code}/randomize")
            if done.status_code == 200:
                answers.randomized.add(code)
                answered()
        except httpx.HTTPError:
            return  # cut off by the kill: the outcome is unknown, either is fine

    limits = httpx.Limits(max_connections=OPERATIONS)
    async with httpx.AsyncClient(
        base_url=url, headers=bearer(token), timeout=60, limits=limits
    ) as client:
        await asyncio.gather(*(operation(client, i) for i in range(OPERATIONS)))
    if not killed.is_set():
        server.kill()
    return answers


def crash_rounds(
    db: Database, env: Mapping[str, str], token: str, *, rounds: int, seed: int
) -> list[str]:
    """Run `rounds` rounds; before each (and after the last) the server is started again
    on the crashed database and everything answered so far is checked."""
    rng = random.Random(seed)
    answers = Answers()
    for number in range(rounds + 1):
        with running_server_processes(env) as (server,):
            problems = check_after_restart(db, answers)
            if problems:
                return [f"after crash {number}: {p}" for p in problems]
            if number == rounds:
                return []
            kill_after = rng.randint(1, 2 * OPERATIONS)  # at times after every answer
            answered = asyncio.run(_drive(server.url, token, kill_after, server))
            answers.enrolled |= answered.enrolled
            answers.randomized |= answered.randomized
    return []


def check_after_restart(db: Database, answers: Answers) -> list[str]:
    """Every problem found in the database once the server is back: lost answers,
    half-written rows, allocations or audit trail that do not verify."""
    problems: list[str] = []
    with db.session(write=False) as session:
        participants = {p.code: p for p in session.scalars(select(Participant))}
        contacts = set(session.scalars(select(Contact.participant_id)))
        surveys: dict[int, set[str]] = {}
        for participant_id, timepoint in session.execute(
            select(SurveyInstance.participant_id, SurveyInstance.timepoint)
        ):
            surveys.setdefault(participant_id, set()).add(timepoint)
        allocated = set(session.scalars(select(Allocation.participant_id)))
        for code in answers.enrolled - participants.keys():
            problems.append(f"{code} was answered 201 but is not in the database")
        for code in answers.randomized:
            p = participants.get(code)
            if p is None or p.status != ParticipantStatus.randomized or p.id not in allocated:
                problems.append(f"{code} was answered randomized but is not")
        for p in participants.values():
            if p.status != ParticipantStatus.ineligible and p.id not in contacts:
                problems.append(f"{p.code} was enrolled without its contact details")
            if (p.status == ParticipantStatus.randomized) != (p.id in allocated):
                problems.append(f"{p.code}: status and allocation disagree")
            expected = {
                ParticipantStatus.enrolled: {"baseline"},
                ParticipantStatus.randomized: {"baseline", "month_4", "month_12"},
            }.get(p.status, surveys.get(p.id, set()))
            if surveys.get(p.id, set()) != expected:
                problems.append(
                    f"{p.code} ({p.status}) has surveys {sorted(surveys.get(p.id, []))}"
                )
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        findings = verify_allocations(session, study=study)
        problems += [f"allocation {f.where}: {f.problem}" for f in findings]
        problems += [f"audit {b.seq}: {b.problem}" for b in verify_chain(session)]
    if db.is_sqlite:
        path = db.settings.sqlite_path
        with sqlite3.connect(path) as connection:
            result = connection.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            problems.append(f"SQLite integrity_check: {result}")
    return problems
