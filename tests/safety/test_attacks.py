"""The safety endpoints as an attacker tries them: what once got through or said too
little is kept here. Every refusal is a 4xx problem naming the field (never a 500), and
nothing is stored on a refused request (rows and audit records are counted).

One application and database per backend for the module (the demo study, and a second
study whose event must be 404 under the first's slug); each case uses the module's
participant, event and deviation, and refuses, so none changes another's state.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit.models import AuditRecord
from app.auth import service as auth
from app.config import Settings
from app.db.engine import Database
from app.demo import DEMO_ADMIN_EMAIL, demo_definition, load_demo
from app.main import create_app
from app.safety.models import AdverseEvent, AdverseEventVersion, ProtocolDeviation
from app.studies import service as studies
from app.studies.validation import parse_definition
from tests.console.conftest import ORIGIN, Browser, csrf_of, link_for
from tests.helpers import STUDY, Api, bearer, study_today

S = f"/api/v1/studies/{STUDY}"
C = f"/console/studies/{STUDY}"
SAE: dict[str, Any] = {
    "AETERM": "Hospitalised",
    "AESTDTC": "2026-01",
    "AESEV": "severe",
    "AESER": True,
    "AESHOSP": True,
    "AEREL": "possible",
    "AEEXPECT": False,
    "AEOUT": "recovering",
    "AEACN": "none",
}
JSON = {"content-type": "application/json"}


@dataclass
class Env:
    client: TestClient
    db: Database
    api: Api
    coordinator: str  # of PHL
    code: str  # a PHL participant
    event: int  # an open serious event of it
    deviation: int
    elsewhere: int  # an event of the second study

    def send(self, method: str, url: str, body: Any = None, **headers: str) -> Any:
        """The body as JSON written out by hand (NaN, lone surrogates and all)."""
        content = None if body is None else json.dumps(body, allow_nan=True).encode()
        headers = {**bearer(self.coordinator), **JSON, **headers}
        return self.client.request(method, url, content=content, headers=headers)

    def stored(self) -> tuple[int, ...]:
        with self.db.begin() as session:
            return tuple(
                session.scalar(select(func.count()).select_from(table)) or 0
                for table in (AdverseEvent, AdverseEventVersion, ProtocolDeviation, AuditRecord)
            )


@pytest.fixture(scope="module")
def env(module_settings: Settings) -> Iterator[Env]:
    settings = module_settings
    db = Database(settings)
    with db.begin() as session:
        loaded = load_demo(session)
        document = demo_definition() | {"slug": "second-study"}
        actor = auth.principal_of(auth.find_user(session, email=DEMO_ADMIN_EMAIL))  # type: ignore[arg-type]
        second = studies.create_study(session, definition=parse_definition(document), actor=actor)
        studies.add_site(session, study=second, code="PHL", name="Philadelphia", actor=actor)
        studies.activate_study(session, study=second, actor=actor)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client, admin_token=loaded.token)
        coordinator = api.user("coordinator", "PHL")
        code = api.enroll(coordinator)
        event = client.post(
            f"{S}/participants/{code}/events", json=SAE, headers=bearer(coordinator)
        )
        today = study_today().isoformat()  # a deviation cannot be dated after it
        deviation = client.post(
            f"{S}/participants/{code}/deviations",
            json={
                "category": "other",
                "occurred_on": today,
                "description": "d",
                "important": False,
            },
            headers=bearer(coordinator),
        )
        other = api.user("coordinator", "PHL", study="second-study")
        there = api.enroll(other, study="second-study")
        elsewhere = client.post(
            f"/api/v1/studies/second-study/participants/{there}/events",
            json=SAE,
            headers=bearer(other),
        )
        assert {event.status_code, deviation.status_code, elsewhere.status_code} == {201}
        yield Env(
            client,
            db,
            api,
            coordinator,
            code,
            event.json()["id"],
            deviation.json()["id"],
            elsewhere.json()["id"],
        )
    db.dispose()


def _refused(env: Env, method: str, url: str, body: Any = None, **headers: str) -> Any:
    before = env.stored()
    answer = env.send(method, url, body, **headers)
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert env.stored() == before, "a refused request stored something"
    return answer


def _today() -> str:
    return study_today().isoformat()


# (what, where the body goes, the body, the field the problem must name)
BODIES: list[tuple[str, str, dict[str, Any], str]] = [
    # were accepted: a trailing newline (`$`), other scripts' digits (`\d`), lax booleans
    ("onset-newline", "event", SAE | {"AESTDTC": "2026-01\n"}, "AESTDTC"),
    ("end-fullwidth", "event", SAE | {"AEENDTC": "\uff12\uff10\uff12\uff16"}, "AEENDTC"),
    ("onset-arabic", "event", SAE | {"AESTDTC": "\u0662\u0660\u0662\u0665"}, "AESTDTC"),
    ("serious-string", "event", SAE | {"AESER": "true"}, "AESER"),
    ("expected-1", "event", SAE | {"AEEXPECT": 1}, "AEEXPECT"),
    ("criterion-yes", "event", SAE | {"AESHOSP": "yes"}, "AESHOSP"),
    ("follow-up-string", "version", {"AEEXPECT": "no"}, "AEEXPECT"),
    # named the body only: NUL and lone surrogates are now located
    ("term-nul", "event", SAE | {"AETERM": "a\x00b"}, "AETERM"),
    ("note-surrogate", "version", {"note": "\ud800"}, "note"),
    ("reference-nul", "report", {"reported_on": _today(), "reference": "\x00"}, "reference"),
    ("description-surrogate", "deviation-version", {"description": "x\udfff"}, "description"),
    ("no-event-without-note", "acknowledge", {"outcome": "no_event"}, "note"),
    (
        "no-event-with-event",
        "acknowledge",
        {"outcome": "no_event", "note": "n", "event": {}},
        "event",
    ),
    ("initial-again", "version", {"kind": "initial", "note": "n"}, "kind"),
    # bounded and typed
    ("term-600k", "event", SAE | {"AETERM": "x" * 600_000}, "AETERM"),
    ("term-list", "event", SAE | {"AETERM": list(range(100_000))}, "AETERM"),
    ("alert-2**63", "event", SAE | {"alert": 2**63}, "alert"),
    ("aware-year-0", "event", SAE | {"aware_on": "0000-01-01"}, "aware_on"),
    ("onset-feb-30", "event", SAE | {"AESTDTC": "2026-02-30"}, "AESTDTC"),
    ("onset-9999", "event", SAE | {"AESTDTC": "9999-12-31"}, "AESTDTC"),
    ("severity-nan", "event", SAE | {"AESEV": float("nan")}, "AESEV"),
    ("reported-junk", "report", {"reported_on": "2026-01-01x", "reference": "r"}, "reported_on"),
    ("occurred-float", "deviation", {"category": "other", "occurred_on": 1.5}, "occurred_on"),
    ("important-string", "deviation-version", {"important": "yes"}, "important"),
]


def _url(env: Env, where: str) -> str:
    return {
        "event": f"{S}/participants/{env.code}/events",
        "version": f"{S}/events/{env.event}/versions",
        "report": f"{S}/events/{env.event}/deadlines/irb_sae/report",
        "deviation": f"{S}/participants/{env.code}/deviations",
        "deviation-version": f"{S}/deviations/{env.deviation}/versions",
        "acknowledge": f"{S}/alerts/1/acknowledge",
    }[where]


@pytest.mark.parametrize(("what", "where", "body", "field"), BODIES, ids=[b[0] for b in BODIES])
def test_a_bad_body_is_422_naming_the_field_and_stores_nothing(
    env: Env, what: str, where: str, body: dict[str, Any], field: str
) -> None:
    refused = _refused(env, "POST", _url(env, where), body)
    assert refused.status_code == 422, refused.text[:300]
    named = [e["loc"] for e in refused.json()["errors"]]
    assert any(field in loc for loc in named), named


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "events/{id}", 422),
        ("POST", "events/{id}/versions", 422),
        ("GET", "deviations/{id}", 422),
        ("POST", "alerts/{id}/acknowledge", 422),
    ],
)
@pytest.mark.parametrize("value", ["0", "-1", str(2**31), str(2**63), "1e3", "1.5", "%00"])
def test_ids_out_of_range_or_not_numbers_are_422(
    env: Env, method: str, path: str, status: int, value: str
) -> None:
    body = {"note": "n"} if "versions" in path else {"outcome": "no_event", "note": "n"}
    refused = _refused(env, method, f"{S}/{path.format(id=value)}", body)
    assert refused.status_code == status


def test_another_studys_event_under_this_slug_is_404(env: Env) -> None:
    assert env.send("GET", f"{S}/events/{env.elsewhere}").status_code == 404
    _refused(env, "POST", f"{S}/events/{env.elsewhere}/versions", {"note": "n"})
    report = {"reported_on": _today(), "reference": "r"}
    answer = _refused(env, "POST", f"{S}/events/{env.elsewhere}/deadlines/irb_sae/report", report)
    assert answer.status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "events?limit=0",
        "events?limit=100000",
        "events?cursor=garbage",
        "events?participant=%00",
        "events?serious=maybe",
        "deviations?state=bogus",
        "deviations?cursor=" + "A" * 65,
        "safety/due?limit=1e3",
        "reports/dsmb?part=../",
        "reports/dsmb?part=open&format=exe",
        "reports/ctgov-adverse-events?threshold=nan",
        "reports/ctgov-adverse-events?threshold=101",
        "exports/blinded?table=../adverse_events&format=csv",
        "exports/codebook?table=deviations&format=exe",
    ],
)
def test_bad_query_parameters_are_422(env: Env, query: str) -> None:
    refused = env.client.get(f"{S}/{query}", headers=bearer(env.api.admin_token))
    assert refused.status_code == 422, refused.text[:300]


def test_a_replayed_idempotency_key_answers_the_same_and_stores_nothing_new(env: Env) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    url = f"{S}/events/{env.event}/versions"
    first = env.send("POST", url, {"note": "called back"}, **key)
    assert first.status_code == 201, first.text
    before = env.stored()
    again = env.send("POST", url, {"note": "called back"}, **key)
    assert (again.status_code, again.json()) == (201, first.json())
    assert env.stored() == before
    assert _refused(env, "POST", url, {"note": "something else"}, **key).status_code == 409


def test_console_forms_refuse_junk_and_never_fail(env: Env) -> None:
    email = f"coordinator-{uuid.uuid4().hex[:8]}@example.org"
    env.api.user("coordinator", "PHL", email=email)
    browser = Browser(env.client, email)
    browser.client = TestClient(
        env.client.app, follow_redirects=False, raise_server_exceptions=False
    )
    assert browser.open_link(link_for(env.db, email)).status_code == 303
    form = f"{C}/participants/{env.code}/events"
    page = browser.get(f"{form}/new")
    before = env.stored()
    body = {k: "yes" if v is True else "no" if v is False else v for k, v in SAE.items()}
    assert browser.client.post(form, data=body, headers=ORIGIN).status_code == 403  # no csrf
    # "²" is a digit to str.isdigit but not to int(): it was a 500
    junk = {"csrf_token": csrf_of(page.text), **body, "AESER": "true", "alert": "²"}
    refused = browser.client.post(form, data=junk, headers=ORIGIN)
    assert refused.status_code == 422, refused.text[:300]
    assert env.stored() == before
