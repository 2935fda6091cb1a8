"""CONSORT with people who screened themselves online: which sign-ups are assessed, in
which box, and the JSON, the diagram and its description saying the same numbers."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy import select

from app.db.base import utcnow
from app.db.engine import Database
from app.join.models import Applicant
from app.participants.models import Participant
from app.reports.flow import AWAITING_REVIEW, CONSENT_NOT_FINISHED, ConsortFlow, applicant_box
from app.reports.svg import consort_svg
from app.studies.models import Site, Study
from tests.helpers import ELIGIBLE, STUDY, bearer

BASE = f"/api/v1/studies/{STUDY}"
SVG = "{http://www.w3.org/2000/svg}"


def test_which_sign_ups_are_assessed_and_in_which_box():
    assert applicant_box("contact", None, participant=False) == CONSENT_NOT_FINISHED
    assert applicant_box("consent", [], participant=False) == CONSENT_NOT_FINISHED
    assert applicant_box("held", ["duplicate_email"], participant=False) == AWAITING_REVIEW
    assert applicant_box("held", ["busy_address"], participant=False) == AWAITING_REVIEW
    # A robot's signs, whatever the state (the checks run at screening) and beside others.
    assert applicant_box("held", ["duplicate_phone", "honeypot"], participant=False) is None
    assert applicant_box("consent", ["too_fast"], participant=False) is None
    # Counted by their participant row, or never: rejected by a coordinator.
    assert applicant_box("held", ["duplicate_email"], participant=True) is None
    assert applicant_box("enrolled", None, participant=True) is None
    assert applicant_box("ineligible", None, participant=False) is None
    assert applicant_box("rejected", ["duplicate_email"], participant=False) is None


def _sign_up(db: Database, state: str, *, holds: list[str] | None = None, joined: str = "") -> None:
    """An online sign-up of the demo study at PHL, as the join flow leaves it."""
    now = utcnow()
    with db.session(write=True) as session, session.begin():
        study = session.scalars(select(Study).where(Study.slug == STUDY)).one()
        site = session.scalars(
            select(Site).where(Site.study_id == study.id, Site.code == "PHL")
        ).one()
        participant = None
        if joined:
            participant = session.scalars(
                select(Participant.id).where(Participant.code == joined)
            ).one()
        session.add(
            Applicant(
                study_id=study.id,
                site_id=site.id,
                token_hash=secrets.token_hex(32),
                state=state,
                language="en",
                screening=ELIGIBLE,
                strata={"diagnosis": "bipolar"},
                ineligible_reasons=None,
                hold_reasons=holds,
                participant_id=participant,
                created_at=now,
                updated_at=now,
            )
        )


def _online(db: Database, *codes: str) -> None:
    """These participants came through the public link."""
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(Participant).where(Participant.code.in_(codes)).values(source="join")
        )


def _tspan_text(root: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text") if "".join(t.itertext()))


def test_consort_counts_self_screened_people_and_its_three_forms_agree(api, db):
    admin = api.admin_token
    # Staff screen one out; one person screens out online (an ineligible participant row).
    for _ in range(2):
        body = {"site": "PHL", "screening": {**ELIGIBLE, "age_18_plus": False}}
        made = api.client.post(f"{BASE}/participants", json=body, headers=bearer(admin))
        assert made.status_code == 201 and made.json()["status"] == "ineligible"
        last = made.json()["code"]
    _online(db, last)
    staff, online = api.enroll(admin), api.enroll(admin)  # one enrolled by staff, one online
    _online(db, online)
    assert api.randomize(admin, online).status_code == 200
    _sign_up(db, "enrolled", joined=online)  # counted by its participant row
    _sign_up(db, "contact")  # still to give contact details
    _sign_up(db, "consent")  # reading the consent
    _sign_up(db, "held", holds=["duplicate_email"])  # signed, a duplicate to review
    _sign_up(db, "consent", holds=["honeypot"])  # a robot going through consent
    _sign_up(db, "held", holds=["too_fast", "busy_study"])  # a robot, held
    _sign_up(db, "rejected", holds=["duplicate_phone"])  # refused by a coordinator

    report = api.client.get(f"{BASE}/reports/consort", headers=bearer(admin)).json()
    expected = {
        "screened": 4 + 3,  # four participants, three sign-ups not participants yet
        "self_screened": 2 + 3,
        "ineligible": 2,
        "consent_not_finished": 2,
        "awaiting_review": 1,
        "excluded": 2 + 2 + 1,
        "enrolled": 2,
        "awaiting_randomization": 1,
        "randomized": 1,
    }
    assert {k: report[k] for k in expected} == expected
    assert report["screened"] == (
        report["excluded"] + report["awaiting_randomization"] + report["randomized"]
    )
    assert staff != online

    svg = api.client.get(f"{BASE}/reports/consort?format=svg", headers=bearer(admin))
    root = ET.fromstring(svg.content)
    shown = _tspan_text(root)
    for line in (
        "Assessed for eligibility (n=7)",
        "of whom screened online (n=5)",
        "Excluded (n=5)",
        "Did not finish online consent (n=2)",
        "Signed online, awaiting review (n=1)",
        "Awaiting randomization (n=1)",
        "Randomized (n=1)",
    ):
        assert line in shown, line
    description = root.find(f"{SVG}desc")
    assert description is not None and description.text is not None
    assert description.text.startswith(
        "Assessed for eligibility: 7, of whom 5 screened themselves online. Excluded: 5 "
        "(not meeting inclusion criteria: 2; Younger than 18: 2; did not finish online "
        "consent: 2; signed online, awaiting review: 1; withdrew before randomization: 0)."
    )


def test_a_study_that_takes_no_sign_ups_online_draws_no_online_lines():
    flow = ConsortFlow(
        study_title="Trial",
        screened=3,
        ineligible=1,
        ineligible_by_reason={"Younger than 18": 1},
        enrolled=2,
        withdrawn_before_randomization=0,
        awaiting_randomization=2,
        randomized=0,
        groups=[],
    )
    assert "online" not in consort_svg(flow)
    shown = consort_svg(replace(flow, online=True))
    assert "of whom screened online (n=0)" in shown
    assert "Did not finish online consent (n=0)" in shown
