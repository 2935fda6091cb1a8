"""The enrollment form sent several times at once (a double click, a nervous reload, two
server processes behind a balancer) enrolls one person, against real servers."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app.auth import service as auth
from app.demo import load_demo
from app.participants.models import Participant
from app.users import service as users
from app.users import sign_in
from app.users.schemas import SiteAccess
from tests.console.conftest import csrf_of
from tests.console.test_pages import ELIGIBLE
from tests.helpers import STUDY
from tests.live import running_servers
from tests.randomization.test_concurrency import _server_env

COPIES = 6


def _coordinator_link(db) -> str:  # type: ignore[no-untyped-def]
    with db.begin() as session:
        load_demo(session)
        user, _ = users.create_user(
            session,
            email="twice@example.org",
            name="Twice",
            role=auth.Role.coordinator,
            sites=[SiteAccess(study=STUDY, site="PHL")],
            actor=None,
            token_lifetime=timedelta(days=1),
        )
        _, token = sign_in.issue_link(
            session, user=user, lifetime=timedelta(minutes=15), actor_label="test"
        )
    return token


async def _send_copies(urls: list[str], token: str) -> list[int]:
    """Sign in on the first server, then send the copies to both servers at once."""
    url = urls[0]
    limits = httpx.Limits(max_connections=COPIES, max_keepalive_connections=COPIES)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        origin = {"Origin": url}
        opened = await client.get(f"/console/sign-in/{token}")
        used = await client.post(
            f"/console/sign-in/{token}", data={"csrf_token": csrf_of(opened.text)}, headers=origin
        )
        assert used.status_code == 303, used.text
        page = await client.get(f"/console/studies/{STUDY}/enroll")
        form_id = re.search(r'name="form_id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        form = {"csrf_token": csrf_of(page.text), "form_id": form_id, **ELIGIBLE}
        sent = await asyncio.gather(
            *(
                client.post(
                    f"{server}/console/studies/{STUDY}/enroll",
                    data=form,
                    headers={"Origin": server},
                )
                for server in (urls[i % len(urls)] for i in range(COPIES))
            )
        )
        locations = {r.headers.get("location") for r in sent if r.status_code == 303}
        assert len(locations) <= 1, locations
        return [r.status_code for r in sent]


@pytest.mark.slow
def test_copies_of_one_form_sent_at_once_enroll_one_person(settings, db) -> None:
    token = _coordinator_link(db)
    with running_servers(_server_env(settings), count=2) as urls:
        statuses = asyncio.run(_send_copies(urls, token))
    assert set(statuses) == {303}, statuses
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Participant)) == 1
