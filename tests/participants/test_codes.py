"""Participant codes: enrolled participants' codes run without gaps; screenings that do
not enroll take codes from a series of their own; concurrent screenings never share
one. The reasons of an ineligible screening read as reasons for exclusion."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from app.participants.codes import next_code
from app.studies.models import Site, Study
from tests.helpers import ELIGIBLE, STUDY, bearer

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _screen_out(api, token: str, site: str = "PHL", **answers: bool):
    response = api.client.post(
        PARTICIPANTS,
        json={"site": site, "screening": {**ELIGIBLE, **answers}},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_ineligible_screenings_take_their_own_series_and_enrolled_codes_have_no_gap(api):
    coordinator = api.user("coordinator", "PHL", "PIT")
    first = api.enroll(coordinator)
    out = [_screen_out(api, coordinator, age_18_plus=False)["code"] for _ in range(2)]
    second = api.enroll(coordinator)
    elsewhere = _screen_out(api, coordinator, site="PIT", internet_access=False)["code"]
    assert (first, second) == ("PS-PHL-0001", "PS-PHL-0002")
    assert out == ["PS-PHL-S0001", "PS-PHL-S0002"]
    assert elsewhere == "PS-PIT-S0001"
    shown = api.client.get(f"{PARTICIPANTS}/{out[0]}", headers=bearer(coordinator))
    assert shown.status_code == 200 and shown.json()["status"] == "ineligible"


def test_ineligibility_reasons_are_given_as_codes_and_as_reasons_for_exclusion(api):
    coordinator = api.user("coordinator", "PHL")
    created = _screen_out(api, coordinator, smi_diagnosis=False, internet_access=False)
    assert created["ineligible_reasons"] == ["smi_diagnosis", "internet_access"]
    expected = ["No serious mental illness diagnosis", "No regular internet access"]
    assert created["ineligible_reason_labels"] == expected
    shown = api.client.get(f"{PARTICIPANTS}/{created['code']}", headers=bearer(coordinator))
    assert shown.json()["ineligible_reason_labels"] == expected
    enrolled = api.client.get(
        f"{PARTICIPANTS}/{api.enroll(coordinator)}", headers=bearer(coordinator)
    )
    assert enrolled.json()["ineligible_reason_labels"] is None


def test_concurrent_screenings_never_share_a_code(api, db):
    """Eight writers take numbers of both series at once, each in its own transaction:
    every code differs and each series has no gap."""
    with db.session(write=False) as session:
        study = session.scalars(sa.select(Study).where(Study.slug == STUDY)).one()
        site_id = session.scalars(
            sa.select(Site.id).where(Site.study_id == study.id, Site.code == "PHL")
        ).one()
    codes: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def screen(eligible: bool) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(3):
                with db.begin() as session:
                    site = session.get_one(Site, site_id)
                    codes.append(next_code(session, prefix="PS", site=site, eligible=eligible))
        except BaseException as error:  # reported below, with the codes
            errors.append(error)

    threads = [threading.Thread(target=screen, args=(n % 2 == 0,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(codes) == len(set(codes)) == 24
    assert sorted(c for c in codes if "-S" not in c) == [f"PS-PHL-{n:04d}" for n in range(1, 13)]
    assert sorted(c for c in codes if "-S" in c) == [f"PS-PHL-S{n:04d}" for n in range(1, 13)]
