"""No duplicate and no skipped slot under real concurrent requests to real servers."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict

import httpx
import pytest
from sqlalchemy import select

from app.audit.models import AuditRecord
from app.demo import load_demo
from app.participants.lifecycle import ParticipantStatus
from app.participants.models import Participant
from app.participants.service import verify_allocations
from app.randomization.models import Allocation, Stratum
from app.studies import service as studies
from app.studies.models import Study
from tests.helpers import STUDY, bearer, complete_baseline, enrollment
from tests.live import running_servers

SITES = ("PHL", "PIT", "NYC", "BOS")
DIAGNOSES = ("bipolar", "depressive")  # 4 sites x 2 levels = 8 strata


def _server_env(settings) -> dict[str, str]:
    # What is tested is that no slot is lost or given twice, not how long a writer may
    # wait: two processes on one SQLite file wait for each other in SQLite's busy handler,
    # which is not fair, so on a loaded machine a writer may wait longer than the default
    # lock timeout (and get a 503, correctly, but then this test would not see its slot).
    env = {
        "TRIALDESK_DATABASE_URL": settings.database_url,
        "TRIALDESK_DB_LOCK_TIMEOUT_MS": "120000",
    }
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return env


@pytest.fixture
def admin_token(db) -> str:
    with db.begin() as session:
        loaded = load_demo(session)
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        for code in ("NYC", "BOS"):
            studies.add_site(session, study=study, code=code, name=code, actor=None)
    return loaded.token


async def _enroll_and_randomize(
    client: httpx.AsyncClient, base: str, token: str, site: str, diagnosis: str
) -> tuple[int, int]:
    enrolled = await client.post(
        f"{base}/api/v1/studies/{STUDY}/participants",
        json=enrollment(site, diagnosis),
        headers=bearer(token),
    )
    if enrolled.status_code != 201:
        return enrolled.status_code, 0
    code = enrolled.json()["code"]
    if await complete_baseline(client, base, token, code) != 200:  # the study requires it
        return enrolled.status_code, 0
    randomized = await client.post(
        f"{base}/api/v1/studies/{STUDY}/participants/{code}/randomize", headers=bearer(token)
    )
    return enrolled.status_code, randomized.status_code


async def _storm(urls: list[str], token: str, n: int) -> list[tuple[int, int]]:
    strata = itertools.cycle(itertools.product(SITES, DIAGNOSES))
    servers = itertools.cycle(urls)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        jobs = [
            _enroll_and_randomize(client, next(servers), token, *next(strata)) for _ in range(n)
        ]
        return await asyncio.gather(*jobs)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_200_concurrent_enroll_and_randomize_leave_no_duplicate_or_skipped_slot(
    settings, db, admin_token, processes
):
    with running_servers(_server_env(settings), count=processes) as urls:
        results = asyncio.run(_storm(urls, admin_token, 200))
    assert results == [(201, 200)] * 200

    with db.session(write=False) as session:
        allocations = session.scalars(select(Allocation)).all()
        strata = {s.id: s for s in session.scalars(select(Stratum))}
        participants = session.scalars(select(Participant)).all()
        assert len(allocations) == 200
        assert len({a.participant_id for a in allocations}) == 200
        assert all(p.status == ParticipantStatus.randomized for p in participants)
        by_stratum: dict[int, list[Allocation]] = defaultdict(list)
        for allocation in allocations:
            by_stratum[allocation.stratum_id].append(allocation)
        assert len(by_stratum) == 8
        for stratum_id, rows in by_stratum.items():
            sequences = sorted(a.sequence for a in rows)
            assert sequences == list(range(1, len(rows) + 1)), strata[stratum_id].key
            assert len({(a.block, a.position) for a in rows}) == len(rows)
            assert strata[stratum_id].allocated == len(rows)
        study = session.scalars(select(Study)).one()
        assert verify_allocations(session, study=study) == []
        # Time moves forward: along the audit chain, and along each stratum's slots.
        times = session.execute(select(AuditRecord.at).order_by(AuditRecord.seq)).scalars().all()
        assert all(a <= b for a, b in itertools.pairwise(times))
        for rows in by_stratum.values():
            ordered = [a.randomized_at for a in sorted(rows, key=lambda a: a.sequence)]
            assert all(a <= b for a, b in itertools.pairwise(ordered))


async def _complete(base: str, token: str, code: str) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        assert await complete_baseline(client, base, token, code) == 200


async def _same_participant(urls: list[str], token: str, code: str) -> list[int]:
    servers = itertools.cycle(urls)
    async with httpx.AsyncClient(timeout=60) as client:
        calls = [
            client.post(
                f"{next(servers)}/api/v1/studies/{STUDY}/participants/{code}/randomize",
                headers=bearer(token),
            )
            for _ in range(10)
        ]
        return [r.status_code for r in await asyncio.gather(*calls)]


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_10_simultaneous_randomizations_of_one_participant_use_one_slot(
    settings, db, admin_token, processes
):
    with running_servers(_server_env(settings), count=processes) as urls:
        with httpx.Client(base_url=urls[0]) as client:
            code = client.post(
                f"/api/v1/studies/{STUDY}/participants",
                json=enrollment("PHL", "bipolar"),
                headers=bearer(admin_token),
            ).json()["code"]
        asyncio.run(_complete(urls[0], admin_token, code))
        statuses = asyncio.run(_same_participant(urls, admin_token, code))
    assert sorted(statuses) == [200] + [409] * 9
    with db.session(write=False) as session:
        assert len(session.scalars(select(Allocation)).all()) == 1
        stratum = session.scalars(select(Stratum)).one()
        assert (stratum.allocated, stratum.last_block, stratum.last_position) == (1, 1, 1)
