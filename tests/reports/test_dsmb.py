"""The DSMB report (open and closed parts, JSON, page, PDF) and the adverse-event tables
shaped like ClinicalTrials.gov's, on a small trial whose every count is known."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from app.audit.models import AuditRecord
from app.auth.models import User
from app.config import Settings
from app.db.base import utcnow
from app.db.engine import Database
from app.demo import load_demo
from app.main import create_app
from app.participants.models import Participant
from app.reports.dsmb import group_letters
from app.safety.models import (
    AdverseEvent,
    AdverseEventVersion,
    ProtocolDeviation,
    ProtocolDeviationVersion,
)
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import group_codes
from tests.console.conftest import Browser, link_for
from tests.helpers import STUDY, Api, bearer

BASE = f"/api/v1/studies/{STUDY}"
DSMB = f"{BASE}/reports/dsmb"
PSY = "Psychiatric disorders"


def add_event(db: Database, code: str, *versions: tuple[str, dict[str, Any]]) -> None:
    """An adverse event of the participant with these versions (kind, fields), written
    through the models (as the events API would)."""
    with db.begin() as session:
        person = session.scalars(select(Participant).where(Participant.code == code)).one()
        admin = session.scalars(select(User).where(User.role == "admin")).first()
        assert admin is not None
        number = session.scalars(
            select(AdverseEvent.number).where(AdverseEvent.study_id == person.study_id)
        ).all() or [0]
        event = AdverseEvent(
            study_id=person.study_id,
            site_id=person.site_id,
            participant_id=person.id,
            number=max(number) + 1,
            alert_id=None,
            versions=len(versions),
            closed=any(kind == "closure" for kind, _ in versions),
            opened_at=utcnow(),
            opened_by=admin.id,
        )
        session.add(event)
        session.flush()
        for n, (kind, fields) in enumerate(versions, start=1):
            session.add(
                AdverseEventVersion(
                    event_id=event.id,
                    number=n,
                    kind=kind,
                    fields=fields,
                    recorded_at=utcnow(),
                    recorded_by=admin.id,
                )
            )


def add_deviation(db: Database, code: str, *versions: tuple[str, dict[str, Any]]) -> None:
    with db.begin() as session:
        person = session.scalars(select(Participant).where(Participant.code == code)).one()
        numbers = session.scalars(
            select(ProtocolDeviation.number).where(ProtocolDeviation.study_id == person.study_id)
        ).all()
        deviation = ProtocolDeviation(
            study_id=person.study_id,
            site_id=person.site_id,
            participant_id=person.id,
            number=max(numbers or [0]) + 1,
            state="confirmed",
            source=None,
            versions=len(versions),
            created_at=utcnow(),
            created_by=None,
        )
        session.add(deviation)
        session.flush()
        for n, (kind, fields) in enumerate(versions, start=1):
            session.add(
                ProtocolDeviationVersion(
                    deviation_id=deviation.id,
                    number=n,
                    kind=kind,
                    fields=fields,
                    recorded_at=utcnow(),
                    recorded_by=None,
                )
            )


def initial(**fields: Any) -> tuple[str, dict[str, Any]]:
    base = {"AETERM": "Secret words of the reporter", "AESTDTC": "2026-11-02", "AESER": False}
    return ("initial", base | fields)


@dataclass
class Trial:
    api: Api
    db: Database
    arms: dict[str, str]  # code → arm of the randomized
    waiting: str  # enrolled, never randomized


@pytest.fixture(scope="module")
def trial(module_settings: Settings) -> Iterator[Trial]:
    """Six enrolled at two sites, five randomized; four events (two serious, one fatal,
    one of a participant never randomized); deviations confirmed, proposed, dismissed.

    Built once per module and backend: the tests read it (and add users and reads of the
    report); the one that locks the study comes last."""
    db = Database(module_settings)
    with db.begin() as session:
        loaded = load_demo(session)
    with TestClient(create_app(module_settings)) as client:
        yield _trial(Api(client, admin_token=loaded.token), db)
    db.dispose()


def _trial(api: Api, db: Database) -> Trial:
    admin = api.admin_token
    codes = [api.enroll(admin, site=("PHL", "PIT")[n % 2]) for n in range(6)]
    arms = {}
    for code in codes[:5]:
        done = api.randomize(admin, code)
        assert done.status_code == 200, done.text
        arms[code] = done.json()["arm"]
    a, b, c = codes[0], codes[1], codes[5]
    add_event(
        db,
        a,
        initial(AESEV="mild", AEBODSYS=PSY, AEDECOD="Suicidal ideation"),
        ("follow_up", {"AESEV": "moderate", "AESER": True, "AESHOSP": True, "note": "ward"}),
    )
    add_event(db, a, initial(AESEV="mild"), ("closure", {"AEOUT": "recovered"}))
    add_event(db, b, initial(AESEV="severe", AESER=True, AESDTH=True, AEOUT="fatal", AEBODSYS=PSY))
    add_event(db, c, initial(AESEV="mild", AEBODSYS="Nervous system disorders"))
    add_deviation(
        db, a, ("initial", {"category": "consent_error", "important": True, "description": "x"})
    )
    add_deviation(db, b, ("proposed", {"category": "outside_window", "important": False}))
    add_deviation(
        db,
        c,
        ("proposed", {"category": "outside_window"}),
        ("dismissal", {"note": "within the window after all"}),
    )
    return Trial(api, db, arms, c)


def table(report: dict[str, Any], code: str) -> dict[str, dict[str, int]]:
    """A table of the report as {row label: {column: count}}."""
    for section in report["sections"]:
        for t in section["tables"]:
            if t["code"] == code:
                return {row["label"]: row["counts"] for row in t["rows"]}
    raise AssertionError(f"no table {code}")


def without_time(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "generated_at"}


def test_open_part_is_pooled_and_counts_the_trial_alike_for_every_staff_role(trial: Trial):
    api = trial.api
    coordinator = api.user("coordinator", "PHL")  # sees one site, reads the whole report
    statistician = api.user("statistician")
    answers = [api.client.get(DSMB, headers=bearer(t)) for t in (coordinator, statistician)]
    assert [a.status_code for a in answers] == [200, 200]
    report = answers[0].json()
    assert without_time(report) == without_time(answers[1].json())
    assert report["part"] == "open" and report["key"] == []
    assert report["time_zone"] == "America/New_York"
    columns = {c["code"] for s in report["sections"] for t in s["tables"] for c in t["columns"]}
    assert columns == {"total", "screened", "eligible", "enrolled", "randomized"} | {
        "expected",
        "completed",
        "missed",
        "pending",
    }
    assert table(report, "recruitment") == {
        "Screened": {"total": 6},
        "Eligible": {"total": 6},
        "Enrolled": {"total": 6},
        "Randomized": {"total": 5},
    }
    by_site = {k[-4:-1]: v["randomized"] for k, v in table(report, "recruitment_by_site").items()}
    assert by_site == {"PHL": 3, "PIT": 2}
    assert table(report, "retention")["Baseline"]["completed"] == 5
    ae = {label: counts["total"] for label, counts in table(report, "adverse_events").items()}
    assert ae == {
        "Events": 4,
        "Participants with at least one event": 3,
        "Serious events": 2,  # the follow-up made the first serious
        "Participants with at least one serious event": 2,
        "Non-serious events": 2,
        "Participants with at least one non-serious event": 2,
        "Events resulting in death": 1,
        "Participants who died of an adverse event": 1,
    }
    severity = table(report, "adverse_events_by_severity")
    assert {k: v["total"] for k, v in severity.items()} == {"Mild": 2, "Moderate": 1, "Severe": 1}
    soc = table(report, "adverse_events_by_organ_class")
    assert list(soc) == ["Nervous system disorders", PSY, "Not coded"]  # "Not coded" last
    assert {k: v["total"] for k, v in soc.items()} == {
        "Nervous system disorders": 1,
        PSY: 2,
        "Not coded": 1,
    }
    assert table(report, "participants_by_organ_class")[PSY]["total"] == 2
    deviations = table(report, "deviations")
    assert deviations["Consent error"]["total"] == 1
    assert deviations["Survey done outside its window"]["total"] == 0  # proposed, dismissed
    assert deviations["Of which important"]["total"] == 1
    text = answers[0].text
    assert "Secret words" not in text and "ward" not in text
    assert not any(code in text for code in [*trial.arms, trial.waiting])
    assert not any(arm in text for arm in set(trial.arms.values()))


def test_closed_part_only_for_the_dsmb_by_letters_of_its_own_with_the_key(trial: Trial):
    api, db = trial.api, trial.db
    refused = [api.user("coordinator", "PHL", "PIT"), api.user("statistician")]
    for token in refused:  # the demo study shows arms to coordinators: still refused
        answer = api.client.get(f"{DSMB}?part=closed", headers=bearer(token))
        assert answer.status_code == 403, answer.text
    allowed = [api.admin_token, api.user("unblinded_statistician"), api.user("dsmb_member")]
    reports = []
    for token in allowed:
        answer = api.client.get(f"{DSMB}?part=closed", headers=bearer(token))
        assert answer.status_code == 200, answer.text
        reports.append(answer.json())
    assert without_time(reports[0]) == without_time(reports[2])
    report = reports[0]
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        key = studies.blinding_key_of(session, study)
        definition = studies.definition_of(study)
        closed_reads = session.scalars(
            select(AuditRecord.action).where(AuditRecord.action == "report.dsmb_closed")
        ).all()
    assert len(closed_reads) == 3  # each read of the closed part, never a refused one
    letters = group_letters(key, [a.code for a in definition.arms])
    labels = {a.code: a.label for a in definition.arms}
    assert report["key"] == [
        {"letter": letter, "arm": arm, "label": labels[arm]}
        for arm, letter in sorted(letters.items(), key=lambda i: i[1])
    ]
    assert [c["code"] for c in report["sections"][0]["tables"][2]["columns"]] == [
        "A",
        "B",
        "C",
        "total",
    ]
    a, b = list(trial.arms)[:2]
    ae = table(report, "adverse_events")
    events = ae["Events"]
    assert events[letters[trial.arms[a]]] >= 2 and events["not_randomized"] == 1
    assert events["total"] == 4 == sum(v for k, v in events.items() if k != "total")
    assert ae["Events resulting in death"][letters[trial.arms[b]]] == 1
    randomized = {k[-4:-1]: v for k, v in table(report, "randomized_by_site").items()}
    assert randomized["PHL"]["total"] == 3 and randomized["PIT"]["total"] == 2
    assert sum(v for k, v in randomized["PHL"].items() if k != "total") == 3
    for arm in set(trial.arms.values()):
        assert arm not in str(report["sections"])  # arms only in the key

    pdf = api.client.get(f"{DSMB}?part=closed&format=pdf", headers=bearer(allowed[1]))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "DSMB report - Closed part" in text
    assert "Appendix: key to the groups" in text
    for arm, letter in letters.items():
        assert f"{letter} {labels[arm]}" in text
    assert "Participants with at least one event" in text
    open_pdf = api.client.get(f"{DSMB}?format=pdf", headers=bearer(allowed[1]))
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(open_pdf.content)).pages)
    assert "Events 4" in text and "Serious events 2" in text and "Randomized 5" in text
    assert "key to the groups" not in text and "Secret words" not in text

    page = api.client.get(f"{DSMB}?part=closed&format=html", headers=bearer(allowed[2]))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Appendix: key to the groups" in page.text and "Content-Security-Policy" in page.headers
    for query in ("part=secret", "format=docx"):
        bad = api.client.get(f"{DSMB}?{query}", headers=bearer(api.admin_token))
        assert bad.status_code == 422, bad.text


def test_letters_are_drawn_apart_from_the_exports_group_codes():
    arms = ["listserv", "control", "bulletin_board"]
    same = 0
    for n in range(600):
        key = n.to_bytes(4, "big") * 8
        letters = group_letters(key, arms)
        assert sorted(letters.values()) == ["A", "B", "C"]
        assert group_letters(key, arms) == letters  # stable
        codes = group_codes(key, arms)
        same += [letters[a] for a in arms] == ["ABC"[int(codes[a][1:]) - 1] for a in arms]
    # Independent orders agree one time in six (3! orders); the same derivation always.
    assert 60 <= same <= 140


def _browser(trial: Trial, client: Any, role: str, *sites: str) -> Browser:
    email = f"{role}-dsmb@example.org"
    trial.api.user(role, *sites, email=email)
    browser = Browser(client, email)
    assert browser.open_link(link_for(trial.db, email)).status_code == 303
    return browser


def test_console_pages_of_the_report_and_its_pdf(trial: Trial):
    client = trial.api.client
    coordinator = _browser(trial, client, "coordinator", "PHL")
    page = coordinator.get(f"/console/studies/{STUDY}/reports/dsmb")
    assert page.status_code == 200, page.text
    assert "DSMB report: open part" in page.text and "Closed part" not in page.text
    assert f'href="/console/studies/{STUDY}/reports/dsmb"' in page.text  # in the navigation
    refused = coordinator.get(f"/console/studies/{STUDY}/reports/dsmb?part=closed")
    assert refused.status_code == 403
    member = _browser(trial, client, "dsmb_member")
    closed = member.get(f"/console/studies/{STUDY}/reports/dsmb?part=closed")
    assert closed.status_code == 200 and "Appendix: key to the groups" in closed.text
    pdf = member.get(f"/console/studies/{STUDY}/reports/dsmb.pdf?part=closed")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    cross = member.get(
        f"/console/studies/{STUDY}/reports/dsmb?part=closed",
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403


def test_ctgov_tables_by_arm_after_lock_only_for_roles_that_see_arms(trial: Trial):
    # Last of the module: it locks the study that the other tests share.
    api = trial.api
    path = f"{BASE}/reports/ctgov-adverse-events"
    early = api.client.get(path, headers=bearer(api.admin_token))
    assert early.status_code == 409, early.text
    locked = api.client.post(f"/api/v1/studies/{STUDY}/lock", headers=bearer(api.admin_token))
    assert locked.status_code == 200, locked.text
    for role in ("coordinator", "dsmb_member", "statistician"):
        token = api.user(role, "PHL") if role == "coordinator" else api.user(role)
        assert api.client.get(path, headers=bearer(token)).status_code == 403
    answer = api.client.get(path, headers=bearer(api.user("unblinded_statistician")))
    assert answer.status_code == 200, answer.text
    files = zipfile.ZipFile(io.BytesIO(answer.content))

    def rows(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(files.read(name).decode())))

    at_risk = {arm: list(trial.arms.values()).count(arm) for arm in set(trial.arms.values())}
    a, b = list(trial.arms)[:2]
    mortality = {r["arm"]: r for r in rows("all_cause_mortality.csv")}
    for arm, row in mortality.items():
        assert int(row["at_risk"]) == at_risk.get(arm, 0)
        assert int(row["deaths"]) == (1 if arm == trial.arms[b] else 0)
    serious = [r for r in rows("serious_adverse_events.csv") if r["affected"] != "0"]
    assert {(r["term"], r["organ_class"], r["arm"]) for r in serious} == {
        ("Suicidal ideation", PSY, trial.arms[a]),
        ("Not coded", PSY, trial.arms[b]),
    }
    other = rows("other_adverse_events.csv")
    # Only the randomized are counted: the event of the one never randomized is not.
    assert {(r["term"], r["organ_class"]) for r in other} == {("Not coded", "Not coded")}
    assert sum(int(r["events"]) for r in other) == 1
    # 1 affected of the arm's at-risk: above 100 % nothing is listed.
    high = api.client.get(f"{path}?threshold=100", headers=bearer(api.admin_token))
    share = 100 / at_risk[trial.arms[a]]
    other_file = zipfile.ZipFile(io.BytesIO(high.content)).read("other_adverse_events.csv")
    listed = list(csv.DictReader(io.StringIO(other_file.decode())))
    assert bool(listed) == (share >= 100)
    assert (
        api.client.get(f"{path}?threshold=101", headers=bearer(api.admin_token)).status_code == 422
    )
