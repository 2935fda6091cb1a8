"""Adverse events through the API: opening, versions, who may do what, blinding of the
medical review, alerts acknowledged with what followed, the notification of a serious
event, a death, the due list and a deadline met.

One application and database per backend for the whole module (the demo study loaded
once); each test makes participants of its own, so none depends on another's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db.engine import Database
from app.demo import demo_definition, load_demo
from app.main import create_app
from app.outbox.models import MessageKind, OutboxMessage
from app.participants.models import Participant
from tests.helpers import BASELINE_ANSWERS, STUDY, Api, bearer

S = f"/api/v1/studies/{STUDY}"
NY = ZoneInfo("America/New_York")
SAE: dict[str, Any] = {
    "AETERM": "Hospitalised after an overdose",
    "AESTDTC": "2026-01",
    "AESEV": "severe",
    "AESER": True,
    "AESHOSP": True,
    "AEREL": "possible",
    "AEEXPECT": False,
    "AEOUT": "recovering",
    "AEACN": "intervention_interrupted",
}
MILD: dict[str, Any] = SAE | {"AESEV": "mild", "AESER": False, "AESHOSP": False}


@dataclass
class Env:
    api: Api
    db: Database
    coordinator: str  # of PHL
    other: str  # coordinator of PIT
    reviewer: str  # safety_reviewer

    @property
    def client(self) -> TestClient:
        client = self.api.client
        assert isinstance(client, TestClient)
        return client

    def post(self, url: str, body: Any, token: str | None = None) -> Any:
        return self.client.post(url, json=body, headers=bearer(token or self.coordinator))

    def get(self, url: str, token: str | None = None) -> Any:
        return self.client.get(url, headers=bearer(token or self.coordinator))

    def participant(self) -> str:
        return self.api.enroll(self.coordinator, site="PHL")

    def event(self, body: dict[str, Any] = SAE, code: str | None = None) -> dict[str, Any]:
        opened = self.post(f"{S}/participants/{code or self.participant()}/events", body)
        assert opened.status_code == 201, opened.text
        event: dict[str, Any] = opened.json()
        return event

    def outbox(self, kind: MessageKind | None, **where: Any) -> list[OutboxMessage]:
        with self.db.begin() as session:
            query = select(OutboxMessage)
            if kind is not None:
                query = query.where(OutboxMessage.kind == kind)
            for name, value in where.items():
                query = query.where(getattr(OutboxMessage, name) == value)
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows


@pytest.fixture(scope="module")
def env(module_settings: Settings) -> Iterator[Env]:
    settings = module_settings
    db = Database(settings)
    with db.begin() as session:
        loaded = load_demo(session)
    with TestClient(create_app(settings)) as client:
        api = Api(client, admin_token=loaded.token)
        yield Env(
            api,
            db,
            coordinator=api.user("coordinator", "PHL"),
            other=api.user("coordinator", "PIT"),
            reviewer=api.user("safety_reviewer"),
        )
    db.dispose()


def today() -> datetime:
    return datetime.now(NY)


def test_an_event_opens_with_version_1_its_number_and_its_deadlines(env: Env) -> None:
    code = env.participant()
    first = env.event(SAE, code)
    second = env.event(MILD, code)
    assert int(second["number"][3:]) == int(first["number"][3:]) + 1
    assert first["version"] == 1 and first["status"] == "open" and first["serious"] is True
    assert first["participant"] == code and first["site"] == "PHL"
    assert [v["kind"] for v in first["versions"]] == ["initial"]
    assert first["state"]["aware_on"] == today().date().isoformat()
    assert first["state"]["AESDTH"] is False  # criteria default to false
    [irb] = first["due"]
    assert irb["code"] == "irb_sae" and irb["report_to"] == "IRB" and irb["applies"] is True
    opened = datetime.fromisoformat(first["opened_at"])
    assert datetime.fromisoformat(irb["due_at"]) == opened + timedelta(hours=24)
    assert second["due"] == [] and second["serious"] is False
    shown = env.get(f"{S}/events/{first['id']}", env.reviewer).json()
    assert shown["versions"][0]["fields"]["AETERM"] == SAE["AETERM"]
    listed = env.get(f"{S}/events?participant={code}&serious=true").json()["items"]
    assert [e["id"] for e in listed] == [first["id"]]
    # a filtered page reads on past events that do not match, and its cursor skips none
    page = env.get(f"{S}/events?participant={code}&serious=false&limit=1").json()
    assert [e["id"] for e in page["items"]] == [second["id"]] and page["next"]
    rest = env.get(page["next"].removeprefix("http://testserver")).json()
    assert rest == {"items": [], "next": None}
    trail = env.get(f"{S}/audit?limit=1000", env.api.admin_token).json()["items"]
    assert any(
        r["action"] == "adverse_event.opened" and r["entity_id"] == first["number"] for r in trail
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"AETERM": None}, "AETERM"),
        ({"AETERM": "x" * 501}, "AETERM"),
        ({"AESTDTC": "2026-13"}, "AESTDTC"),
        ({"AESTDTC": "2026-02-30"}, "AESTDTC"),
        ({"AESTDTC": "3000-01-01"}, "AESTDTC"),
        ({"AESTDTC": "2026-01-10", "AEENDTC": "2026-01-09"}, "AEENDTC"),
        ({"AESER": False}, "AESER"),  # hospitalised, yet not serious
        ({"AEREL": "maybe"}, "AEREL"),
        ({"AEBODSYS": "Sam heard voices again"}, "AEBODSYS"),  # only the 27 organ classes
        ({"note": "x" * 4001}, "note"),
        ({"aware_on": "3000-01-01"}, "aware_on"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_report_is_refused_naming_the_field(
    env: Env, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in (SAE | change).items() if v is not None}
    refused = env.post(f"{S}/participants/{env.participant()}/events", body)
    assert refused.status_code == 422, refused.text
    assert field in [e["loc"][-1] for e in refused.json()["errors"]], refused.text


def test_other_sites_get_404_and_roles_without_safety_403(env: Env) -> None:
    code = env.participant()
    event = env.event(SAE, code)
    assert env.post(f"{S}/participants/{code}/events", SAE, env.other).status_code == 404
    assert env.get(f"{S}/events/{event['id']}", env.other).status_code == 404
    note = {"note": "called"}
    assert env.post(f"{S}/events/{event['id']}/versions", note, env.other).status_code == 404
    assert event["id"] not in [e["id"] for e in env.get(f"{S}/events", env.other).json()["items"]]
    assert event["id"] not in [
        d["event"] for d in env.get(f"{S}/safety/due", env.other).json()["items"]
    ]
    for role in ("statistician", "dsmb_member", "unblinded_statistician"):
        token = env.api.user(role)
        assert env.get(f"{S}/events/{event['id']}", token).status_code == 403, role
        assert env.post(f"{S}/participants/{code}/events", SAE, token).status_code == 403, role
    # a safety reviewer reads and reviews, but records no follow-up nor event
    assert env.post(f"{S}/events/{event['id']}/versions", note, env.reviewer).status_code == 403
    assert env.post(f"{S}/participants/{code}/events", SAE, env.reviewer).status_code == 403


def test_follow_up_review_and_closure_are_kept_in_order(env: Env) -> None:
    event = env.event()
    url = f"{S}/events/{event['id']}/versions"
    follow = env.post(
        url, {"AEOUT": "recovering", "AEBODSYS": " psychiatric DISORDERS", "note": "discharged"}
    )
    assert follow.status_code == 201 and follow.json()["version"] == 2
    review = env.post(url, {"kind": "review", "AEREL": "not_related"}, env.reviewer)
    assert review.status_code == 201, review.text
    reviewed = review.json()
    assert reviewed["reviewed"] == {"AEREL": "not_related"}
    assert reviewed["state"]["AEREL"] == "possible"  # the reporter's stays beside it
    assert reviewed["due"][0]["applies"] is False  # unrelated after review: no IRB clock
    bad = [
        {"kind": "review", "AESEV": "mild"},  # a review carries only the assessment
        {"kind": "review", "note": "looked"},
        {"kind": "closure", "AEOUT": "recovering"},
        {"kind": "closure", "AEOUT": "recovered"},  # ended, with no end date
        {"kind": "closure", "AEENDTC": "2025-12-31", "AEOUT": "recovered"},  # before onset
        {},
    ]
    for body in bad:
        assert env.post(url, body).status_code == 422, body
    closed = env.post(url, {"kind": "closure", "AEOUT": "recovered", "AEENDTC": "2026-02"})
    assert closed.status_code == 201 and closed.json()["status"] == "closed"
    assert env.post(url, {"note": "more news"}).status_code == 409
    assert env.post(url, {"kind": "closure", "AEOUT": "unknown"}).status_code == 409
    late = env.post(url, {"kind": "review", "AEEXPECT": True}, env.reviewer)
    assert late.status_code == 201  # a medical review may come after closure
    shown = env.get(f"{S}/events/{event['id']}").json()
    assert [(v["number"], v["kind"]) for v in shown["versions"]] == [
        (1, "initial"),
        (2, "follow_up"),
        (3, "review"),
        (4, "closure"),
        (5, "review"),
    ]
    assert shown["versions"][1]["fields"] == {
        "AEOUT": "recovering",
        "AEBODSYS": "Psychiatric disorders",  # stored as MedDRA spells it
        "note": "discharged",
    }


def test_a_blind_role_may_not_review_nor_see_a_review(env: Env) -> None:
    slug = f"blind-{uuid.uuid4().hex[:8]}"
    definition = demo_definition() | {"slug": slug}
    definition["blinding"] = {"arm_visible_to": ["admin", "unblinded_statistician"]}
    admin = env.api.admin_token
    assert env.post("/api/v1/studies", definition, admin).status_code == 201
    site = {"code": "PHL", "name": "Philadelphia"}
    assert env.post(f"/api/v1/studies/{slug}/sites", site, admin).status_code == 201
    assert env.post(f"/api/v1/studies/{slug}/activate", None, admin).status_code == 200
    blind = env.api.user("coordinator", "PHL", study=slug)
    base = f"/api/v1/studies/{slug}"
    code = env.api.enroll(blind, study=slug, site="PHL")
    opened = env.post(f"{base}/participants/{code}/events", SAE, blind)
    assert opened.status_code == 201 and "reviewed" not in opened.json()
    url = f"{base}/events/{opened.json()['id']}/versions"
    review = {"kind": "review", "AEREL": "definite", "note": "knowing the arm"}
    assert env.post(url, review, blind).status_code == 403
    assert env.post(url, review, env.reviewer).status_code == 403  # not in arm_visible_to
    assert env.post(url, review, admin).status_code == 201
    seen = env.get(f"{base}/events/{opened.json()['id']}", blind).json()
    assert "reviewed" not in seen
    assert seen["versions"][1]["kind"] == "review" and seen["versions"][1]["fields"] is None
    assert "knowing the arm" not in str(seen) and "definite" not in str(seen)
    unblinded = env.get(f"{base}/events/{opened.json()['id']}", admin).json()
    assert unblinded["reviewed"] == {"AEREL": "definite"}


def _alert(env: Env) -> tuple[str, int]:
    code = env.participant()
    env.api.complete_survey(code, answers=BASELINE_ANSWERS | {"phq9_9": 2})
    alerts = env.get(f"{S}/alerts").json()["items"]
    return code, next(a["id"] for a in alerts if a["participant"] == code)


def test_an_alert_is_acknowledged_with_no_event_or_an_event_prefilled(env: Env) -> None:
    code, alert = _alert(env)
    url = f"{S}/alerts/{alert}/acknowledge"
    assert env.post(url, {"outcome": "no_event"}).status_code == 422  # needs a note
    assert env.post(url, {"note": "called"}).status_code == 422  # needs an outcome
    none = env.post(url, {"outcome": "no_event", "note": "called; safe at home"})
    assert none.status_code == 200 and none.json()["event"] is None
    assert env.post(url, {"outcome": "no_event", "note": "again"}).status_code == 409

    code, alert = _alert(env)
    url = f"{S}/alerts/{alert}/acknowledge"
    missing = env.post(url, {"outcome": "event"})
    assert missing.status_code == 422
    assert {tuple(e["loc"][-2:]) for e in missing.json()["errors"]} == {
        ("event", f) for f in ("AESEV", "AESER", "AEREL", "AEEXPECT", "AEOUT", "AEACN")
    }
    rest = {k: MILD[k] for k in ("AESEV", "AESER", "AEREL", "AEEXPECT", "AEOUT", "AEACN")}
    done = env.post(url, {"outcome": "event", "event": rest})
    assert done.status_code == 200, done.text
    ref = done.json()["event"]
    assert (
        done.json()["acknowledged_at"]
        and done.json()["note"] == f"adverse event {ref['number']} opened"
    )
    event = env.get(f"{S}/events/{ref['id']}").json()
    assert event["alert"] == alert and event["participant"] == code
    day = today().date().isoformat()
    assert event["state"]["AETERM"] == "Thoughts of self-harm (PHQ-9 item 9 above 0)"
    assert event["state"]["AESTDTC"] == day and event["state"]["aware_on"] == day

    # opening an event naming the alert acknowledges it too; one event per alert
    code, alert = _alert(env)
    opened = env.event(MILD | {"alert": alert}, code)
    assert opened["alert"] == alert
    again = env.post(f"{S}/participants/{code}/events", MILD | {"alert": alert})
    assert again.status_code == 409
    assert alert not in [a["id"] for a in env.get(f"{S}/alerts").json()["items"]]


def test_a_serious_event_enqueues_exactly_one_notification(env: Env) -> None:
    serious = env.event(SAE)
    env.post(f"{S}/events/{serious['id']}/versions", {"AESLIFE": True, "AESER": True})
    [message] = env.outbox(MessageKind.safety_event, subject_id=serious["id"])
    assert message.dedupe_key == f"safety_event:{serious['id']}"
    assert message.study_id is not None and message.site_id is not None
    mild = env.event(MILD)
    assert env.outbox(MessageKind.safety_event, subject_id=mild["id"]) == []
    made = env.post(f"{S}/events/{mild['id']}/versions", {"AESER": True, "AESMIE": True})
    assert made.status_code == 201 and made.json()["serious"] is True
    assert len(env.outbox(MessageKind.safety_event, subject_id=mild["id"])) == 1


def test_a_death_records_the_participant_died_and_stops_messages(env: Env) -> None:
    code = env.participant()
    resent = env.post(f"{S}/participants/{code}/surveys/baseline/resend", None)
    assert resent.status_code == 202, resent.text
    assert [m.status for m in env.outbox(None, participant_code=code)] == ["pending"]
    event = env.event(MILD, code)
    url = f"{S}/events/{event['id']}/versions"
    end = today().date().isoformat()
    died = env.post(url, {"AEOUT": "fatal", "AESDTH": True, "AESER": True, "AEENDTC": end})
    assert died.status_code == 201 and died.json()["death"] is True
    assert "dsmb_death" in [d["code"] for d in died.json()["due"] if d["applies"]]
    shown = env.get(f"{S}/participants/{code}").json()
    assert shown["status"] == "withdrawn" and shown["withdrawal_kind"] == "died"
    assert shown["withdrawn_on"] == end
    assert [m.status for m in env.outbox(None, participant_code=code)] == ["skipped"]
    assert len(env.outbox(MessageKind.safety_event, subject_id=event["id"])) == 1
    again = env.post(url, {"kind": "closure", "AEOUT": "fatal"})
    assert again.status_code == 201, again.text  # recorded once: not a second leaving
    trail = env.get(f"{S}/audit?limit=1000", env.api.admin_token).json()["items"]
    assert [r["entity_id"] for r in trail if r["action"] == "participant.withdrawn"].count(
        code
    ) == 1
    with env.db.begin() as session:
        participant = session.scalars(select(Participant).where(Participant.code == code)).one()
        assert participant.withdrawal_category == "death"


def test_the_due_list_puts_the_oldest_first_and_a_report_closes_a_deadline(env: Env) -> None:
    day = today().date()
    late = env.event(SAE | {"aware_on": (day - timedelta(days=3)).isoformat()})
    soon = env.event(SAE | {"aware_on": (day - timedelta(days=1)).isoformat()})
    fresh = env.event(SAE)
    ours = {late["id"], soon["id"], fresh["id"]}
    listed = [d for d in env.get(f"{S}/safety/due").json()["items"] if d["event"] in ours]
    assert [d["event"] for d in listed] == [late["id"], soon["id"], fresh["id"]]
    assert [d["overdue"] for d in listed] == [True, True, False]
    assert listed[0]["participant"] == late["participant"] and listed[0]["code"] == "irb_sae"
    flagged = env.get(f"{S}/events?participant={late['participant']}").json()["items"]
    assert flagged[0]["overdue"] is True
    url = f"{S}/events/{late['id']}/deadlines/irb_sae/report"
    future = (day + timedelta(days=1)).isoformat()
    assert env.post(url, {"reported_on": future, "reference": "IRB-7"}).status_code == 422
    met = env.post(url, {"reported_on": day.isoformat(), "reference": "IRB-2026-0042"})
    assert met.status_code == 200, met.text
    [irb] = met.json()["due"]
    assert irb["reported_on"] == day.isoformat() and irb["reference"] == "IRB-2026-0042"
    assert irb["overdue"] is False
    assert env.post(url, {"reported_on": day.isoformat(), "reference": "x"}).status_code == 409
    none = f"{S}/events/{late['id']}/deadlines/dsmb_death/report"
    assert env.post(none, {"reported_on": day.isoformat(), "reference": "x"}).status_code == 409
    left = [d["event"] for d in env.get(f"{S}/safety/due").json()["items"]]
    assert late["id"] not in left and soon["id"] in left
    # a met deadline stays met whatever follows
    after = env.post(
        f"{S}/events/{late['id']}/versions", {"kind": "review", "AEEXPECT": True}, env.reviewer
    )
    assert after.json()["due"][0]["reported_on"] == day.isoformat()


def test_a_death_first_learnt_at_closure_starts_the_dsmb_clock_on_the_day_known(
    env: Env,
) -> None:
    event = env.event(MILD)
    known = (today().date() - timedelta(days=3)).isoformat()
    closed = env.post(
        f"{S}/events/{event['id']}/versions",
        {"kind": "closure", "AEOUT": "fatal", "AESDTH": True, "AESER": True, "AEENDTC": known},
    )
    assert closed.status_code == 422  # a closure carries the outcome, not the criteria
    closed = env.post(
        f"{S}/events/{event['id']}/versions",
        {"kind": "closure", "AEOUT": "fatal", "AEENDTC": known, "aware_on": known},
    )
    assert closed.status_code == 201, closed.text
    [death] = [d for d in closed.json()["due"] if d["code"] == "dsmb_death"]
    # 48 hours from the start of the day the team knew (New York), 3 days ago: overdue.
    assert death["applies"] and death["overdue"] is True
