"""Loading engagement and reading it back, through the API and the command line, on both
backends: one application per backend for the module.

The demo study (arms shown to admins and the unblinded statistician) has three
randomized participants whose randomization is moved 60 days back, and one known load
(`KNOWN`) made by the fixture: the summary, the unblinded engagement file and the closed
DSMB report are checked against it. Every other load goes to a second study whose arms
only admins see, so the known numbers never move.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from app.audit.models import AuditRecord
from app.auth import service as auth
from app.cli import app as cli
from app.config import Settings
from app.db.base import utcnow
from app.db.engine import Database
from app.demo import DEMO_ADMIN_EMAIL, demo_definition, load_demo
from app.engagement import service
from app.engagement.models import EngagementEvent
from app.engagement.rows import FileFormat
from app.main import create_app
from app.participants.models import Participant
from app.randomization.models import Allocation
from app.reports.dsmb import group_letters
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import pseudonym
from app.studies.validation import parse_definition
from tests.helpers import STUDY, Api, bearer

SECOND = "second-study"
CSV = {"content-type": "text/csv"}
JSONL = {"content-type": "application/x-ndjson"}


@dataclass
class Env:
    client: TestClient
    db: Database
    api: Api
    settings: Settings
    codes: list[str]  # of the demo study, randomized 60 days ago
    arms: dict[str, str]
    randomized: datetime
    pseudonyms: dict[str, str]
    other: str  # a participant of the second study
    unblinded: str  # an unblinded statistician's token
    now: datetime

    def load(self, body: str | bytes, study: str = SECOND, token: str | None = None, **h: str):
        headers = {**bearer(token or self.api.admin_token), **(h or JSONL)}
        url = f"/api/v1/studies/{study}/engagement"
        return self.client.post(url, content=body, headers=headers)

    def stored(self) -> tuple[int, int]:
        with self.db.begin() as session:
            events = session.scalar(select(func.count()).select_from(EngagementEvent))
            records = session.scalar(select(func.count()).select_from(AuditRecord))
            return int(events or 0), int(records or 0)


def line(event_id: str, participant: str, at: datetime | str, kind: str = "post", **more):
    when = at if isinstance(at, str) else at.isoformat()
    return json.dumps(
        {"event_id": event_id, "participant": participant, "at": when, "kind": kind, **more}
    )


def known(env_codes: list[str], pseudonyms: dict[str, str], r: datetime, now: datetime) -> str:
    """P1: weeks 0, 1 and 7 of follow-up, 3 posts, 2 logins, 8 events (and a login before
    randomization, not counted); P2 (by pseudonym): one post in week 1; P3: nothing."""
    p1, p2 = env_codes[0], pseudonyms[env_codes[1]]
    rows = [
        line("k0", p1, r - timedelta(days=2), "login"),
        line("k1", p1, r + timedelta(hours=1), "post", count=2),
        line("k2", p1, r + timedelta(days=3), "login"),
        line("k3", p1, r + timedelta(days=8), "reply"),
        line("k4", p1, r + timedelta(days=50), "email_read", count=3),
        line("k5", p1, now - timedelta(days=5), "login"),
        line("k6", p2, r + timedelta(days=10), "post"),
    ]
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def env(module_settings: Settings) -> Iterator[Env]:
    settings = module_settings
    db = Database(settings)
    with db.begin() as session:
        loaded = load_demo(session)
        document = demo_definition() | {"slug": SECOND}
        document["blinding"] = {**document["blinding"], "arm_visible_to": ["admin"]}
        actor = auth.principal_of(auth.find_user(session, email=DEMO_ADMIN_EMAIL))  # type: ignore[arg-type]
        second = studies.create_study(session, definition=parse_definition(document), actor=actor)
        studies.add_site(session, study=second, code="PHL", name="Philadelphia", actor=actor)
        studies.activate_study(session, study=second, actor=actor)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client, admin_token=loaded.token)
        coordinator = api.user("coordinator", "PHL")
        codes = [api.enroll(coordinator) for _ in range(3)]
        for code in codes:
            assert api.randomize(coordinator, code).status_code == 200
        other = api.enroll(api.user("coordinator", "PHL", study=SECOND), study=SECOND)
        now = utcnow()
        randomized = now - timedelta(days=60)
        with db.begin() as session:
            session.execute(
                update(Participant)
                .where(Participant.code.in_(codes))
                .values(randomized_at=randomized)
            )
            study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
            key = studies.blinding_key_of(session, study)
            arms = {
                code: arm
                for code, arm in session.execute(
                    select(Participant.code, Allocation.arm).join(
                        Allocation, Allocation.participant_id == Participant.id
                    )
                )
            }
        pseudonyms = {code: pseudonym(key, code) for code in codes}
        e = Env(
            client,
            db,
            api,
            settings,
            codes,
            arms,
            randomized,
            pseudonyms,
            other,
            api.user("unblinded_statistician"),
            now,
        )
        first = e.load(known(codes, pseudonyms, randomized, now), study=STUDY, token=e.unblinded)
        assert first.status_code == 200, first.text
        assert first.json()["accepted"] == 7
        yield e
    db.dispose()


def test_the_summary_counts_the_known_load(env: Env):
    answer = env.client.get(
        f"/api/v1/studies/{STUDY}/engagement/summary", headers=bearer(env.unblinded)
    )
    assert answer.status_code == 200, answer.text
    by = {item["pseudonym"]: item for item in answer.json()["items"]}
    p1, p2, p3 = (by[env.pseudonyms[c]] for c in env.codes)
    assert (p1["active_weeks"], p1["posts"], p1["logins"], p1["events"]) == (3, 3, 2, 8)
    assert p1["by_kind"] == {"email_read": 3, "login": 2, "post": 2, "reply": 1}
    r = env.randomized
    assert datetime.fromisoformat(p1["first_use"]) == r + timedelta(hours=1)
    assert datetime.fromisoformat(p1["last_use"]) == env.now - timedelta(days=5)
    assert (p2["active_weeks"], p2["posts"], p2["events"]) == (1, 1, 1)  # loaded by pseudonym
    assert (p3["active_weeks"], p3["events"], p3["first_use"]) == (0, 0, None)
    assert {item["arm"] for item in by.values()} <= set(env.arms.values())
    assert p1["arm"] == env.arms[env.codes[0]]


def test_the_closed_dsmb_report_gives_use_per_group_and_the_open_part_none(env: Env):
    url = f"/api/v1/studies/{STUDY}/reports/dsmb"
    closed = env.client.get(f"{url}?part=closed", headers=bearer(env.unblinded)).json()
    opened = env.client.get(url, headers=bearer(env.unblinded)).json()
    assert "intervention_use" not in {s["code"] for s in opened["sections"]}
    table = next(s for s in closed["sections"] if s["code"] == "intervention_use")["tables"][0]
    rows = {row["label"]: row["counts"] for row in table["rows"]}
    with env.db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        arms = [a.code for a in studies.definition_of(study).arms]
        letters = group_letters(studies.blinding_key_of(session, study), arms)
    p1, p2, p3 = (letters[env.arms[c]] for c in env.codes)
    assert rows["Randomized"]["total"] == 3
    assert rows["Used the intervention at least once"]["total"] == 2
    assert rows["Active weeks, median"]["total"] == 1  # of 3, 1 and 0 weeks
    assert rows["Posts and replies, 75th percentile"]["total"] == 2  # of 3, 1, 0 posts
    assert rows["Used in the last 30 days"] == {"total": 1, **_counts({p1: 1}, letters)}
    assert rows["Used in the last 30 days, % of randomized"]["total"] == 33.3
    used = _counts({p1: 1}, letters)
    used[p2] += 1
    assert {
        k: v for k, v in rows["Used the intervention at least once"].items() if k != "total"
    } == used
    assert rows["Randomized"][p3] >= 1
    page = env.client.get(f"{url}?part=closed&format=html", headers=bearer(env.unblinded))
    assert page.status_code == 200 and "Use of the intervention" in page.text


def _counts(some: dict[str, int], letters: dict[str, str]) -> dict[str, int]:
    return {letter: some.get(letter, 0) for letter in letters.values()}


def test_the_unblinded_export_has_an_engagement_file_and_the_blinded_none_of_it(env: Env):
    base = f"/api/v1/studies/{STUDY}/exports"
    reason = "?reason=dose-response analysis plan"
    answer = env.client.get(
        f"{base}/unblinded/engagement{reason}&format=json", headers=bearer(env.unblinded)
    )
    assert answer.status_code == 200, answer.text
    by = {row["pseudonym"]: row for row in answer.json()}
    p1 = by[env.pseudonyms[env.codes[0]]]
    assert (p1["arm"], p1["posts"], p1["events_login"], p1["events_email_read"]) == (
        env.arms[env.codes[0]],
        3,
        2,
        3,
    )
    assert (p1["first_use_day"], p1["last_use_day"], p1["used_last_30_days"]) == (0, 55, True)
    statistician = env.api.user("statistician")
    refused = env.client.get(f"{base}/unblinded/engagement{reason}", headers=bearer(statistician))
    assert refused.status_code == 403
    blinded = env.client.get(f"{base}/blinded", headers=bearer(statistician))
    assert blinded.status_code == 200 and "active_weeks" not in blinded.text


def test_a_file_loaded_twice_is_stored_once_and_duplicates_are_counted(env: Env):
    at = env.now - timedelta(days=1)
    body = (
        "event_id,participant,at,kind,count\n"
        + "".join(f"twice-{i},{env.other},{at.isoformat()},login,{i + 1}\n" for i in range(7))
        + f"twice-0,{env.other},{at.isoformat()},login,1\n"
    )  # the same event again, in the file
    first = env.load(body, **CSV).json()
    again = env.load(body, **CSV).json()
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (7, 1, [])
    assert (again["accepted"], again["duplicates"]) == (0, 8) and again["sha256"] == first["sha256"]
    with env.db.begin() as session:
        audited = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.action == "engagement.imported")
            .order_by(AuditRecord.seq.desc())
        ).first()
    assert audited is not None and audited.entity_id == f"{SECOND}:engagement"


def test_rejected_rows_are_named_by_line_and_the_good_ones_stored(env: Env):
    at = (env.now - timedelta(days=1)).isoformat()
    body = "\n".join(
        [
            line("rj-1", env.other, at),
            line("rj-2", env.other, "2026-01-01T10:00:00"),  # no offset
            line("rj-3", env.codes[-1], at),  # a code only the demo study has
            line("rj-4", env.other, at, kind="Post"),
            line("rj-5", env.other, at, count=0),
            json.dumps({"event_id": "rj-6", "participant": env.other, "kind": "post"}),
            "{not json",
            "[" * 2000 + "]" * 2000,
            line("rj-9", env.other, at, kind="post\u0000"),
            "x" * 10_000,
            line("rj-11", env.other, at, kind="reply"),
            "\x00" + line("rj-12", env.other, at),  # a raw NUL
            "",
        ]
    )
    before = env.stored()
    answer = env.load(body)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["accepted"] == 2 and got["rejected_count"] == 10, got
    problems = {r["line"]: r["problem"] for r in got["rejected"]}
    assert sorted(problems) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert "no UTC offset" in problems[2] and "no participant" in problems[3]
    assert "lower-case" in problems[4] and "1 to 100,000" in problems[5]
    assert (
        "at is missing" in problems[6] and "JSON" in problems[7] and "longer than" in problems[10]
    )
    assert env.codes[-1] not in answer.text and env.codes[-1] != env.other  # never echoed
    assert env.stored()[0] == before[0] + 2


def test_refusals_store_nothing_and_blind_roles_get_neither_load_nor_summary(env: Env):
    blind = {
        role: env.api.user(role, *(["PHL"] if role == "coordinator" else []))
        for role in ("statistician", "coordinator")
    }
    before = env.stored()
    body = line("ref-1", env.other, env.now.isoformat())
    no_header = env.load(f"ref-2,{env.other},{env.now.isoformat()},post\n", **CSV)
    assert no_header.status_code == 422 and no_header.json()["errors"][0]["loc"] == [
        "body",
        "line",
        1,
    ]
    assert env.load(b"\xff" + b"x" * 5000 + b"\n", **CSV).status_code == 422  # a header?
    assert env.load(body, **{"content-type": "application/json"}).status_code == 422
    assert env.load(body, **{"content-type": "text/csv; charset=latin-1"}).status_code == 422
    assert env.load(body, token=env.unblinded).status_code == 403  # the study hides arms from it
    assert env.load(body, study="nowhere").status_code == 404
    for token in blind.values():
        assert env.load(body, study=STUDY, token=token).status_code == 403
        summary = env.client.get(
            f"/api/v1/studies/{STUDY}/engagement/summary", headers=bearer(token)
        )
        assert summary.status_code == 403
    assert (
        env.client.post(
            f"/api/v1/studies/{SECOND}/engagement", content=body, headers=JSONL
        ).status_code
        == 401
    )
    if env.settings.database_url.startswith("sqlite"):  # the bound is the server's alone
        too_large = env.client.post(  # streamed, without a length: counted as it comes
            f"/api/v1/studies/{SECOND}/engagement",
            content=iter([b"x" * (1 << 20)] * 201),
            headers={**bearer(env.api.admin_token), **JSONL},
        )
        assert too_large.status_code == 413
    _lock(env, utcnow())  # a database lock: the data are final
    try:
        assert env.load(body).status_code == 409
    finally:
        _lock(env, None)
    assert env.stored() == before


def _lock(env: Env, at: datetime | None) -> None:
    with env.db.begin() as session:
        session.execute(update(Study).where(Study.slug == SECOND).values(locked_at=at))


def test_an_idempotency_key_replays_the_first_answer(env: Env):
    body = line("idem-1", env.other, env.now.isoformat())
    first = env.load(body, **JSONL, **{"Idempotency-Key": "load-1"})
    again = env.load(body, **JSONL, **{"Idempotency-Key": "load-1"})
    assert first.json()["accepted"] == 1 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert env.load(body + "\n", **JSONL, **{"Idempotency-Key": "load-1"}).status_code == 409


def test_the_command_line_loads_through_the_same_service(env: Env, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALDESK_DATABASE_URL", env.settings.database_url)
    if env.settings.secret_key is not None:
        monkeypatch.setenv("TRIALDESK_SECRET_KEY", env.settings.secret_key.get_secret_value())
    path = tmp_path / "events.csv"
    path.write_text(
        f"event_id,participant,at,kind\ncli-1,{env.other},{env.now.isoformat()},login\nbad,,,\n"
    )
    run = CliRunner().invoke(cli, ["engagement", "load", SECOND, str(path)])
    assert run.exit_code == 0, run.output
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    assert (counts["accepted"], counts["rejected"]) == (1, 1)
    assert f"{path}:3: participant is missing" in run.stderr
    again = CliRunner().invoke(cli, ["engagement", "load", SECOND, str(path), "--format", "csv"])
    assert json.loads(again.stdout.strip().splitlines()[-1])["duplicates"] == 1


class _Paused:
    """A file that stops before line `after + 1` until `go` is set: the load waits there
    between two batches."""

    def __init__(self, data: str, after: int) -> None:
        self.source = io.BytesIO(data.encode())
        self.after = after
        self.read = 0
        self.reached = threading.Event()
        self.go = threading.Event()

    def readline(self, limit: int = -1, /) -> bytes:
        if self.read == self.after:
            self.reached.set()
            assert self.go.wait(30)
        self.read += 1
        return self.source.readline(limit)


def test_other_writers_go_on_while_a_load_runs(env: Env, monkeypatch):
    # A load commits each batch: between two of them another writer (an enrollment)
    # gets the database, and sees the batches stored so far.
    monkeypatch.setattr(service, "BATCH", 2)
    rows = [line(f"pause-{i}", env.other, env.now - timedelta(hours=i)) for i in range(4)]
    paused = _Paused("\n".join(rows) + "\n", after=2)
    done: list[service.ImportResult] = []

    def load() -> None:
        with env.db.session(write=True) as session:
            study = session.scalars(select(Study).where(Study.slug == SECOND)).one()
            done.append(
                service.import_events(
                    session,
                    study=study,
                    source=paused,
                    fmt=FileFormat.jsonl,
                    actor=None,
                    now=utcnow(),
                )
            )
            session.commit()

    loader = threading.Thread(target=load)
    loader.start()
    try:
        assert paused.reached.wait(30)
        coordinator = env.api.user("coordinator", "PHL", study=SECOND)
        assert env.api.enroll(coordinator, study=SECOND)
        with env.db.session(write=False) as session:
            stored = session.scalar(
                select(func.count())
                .select_from(EngagementEvent)
                .where(EngagementEvent.event_id.like("pause-%"))
            )
        assert stored == 2
    finally:
        paused.go.set()
        loader.join(30)
    assert [(r.accepted, r.duplicates) for r in done] == [(4, 0)]
