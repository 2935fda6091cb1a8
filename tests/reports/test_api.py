"""Reports on a scripted trial: every count known in advance."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import sqlalchemy as sa

from tests.helpers import ELIGIBLE, STUDY, bearer

BASE = f"/api/v1/studies/{STUDY}"
SVG = "{http://www.w3.org/2000/svg}"


def _screen_out(api, token: str, **answers: bool) -> None:
    body = {"site": "PHL", "screening": {**ELIGIBLE, **answers}}
    response = api.client.post(f"{BASE}/participants", json=body, headers=bearer(token))
    assert response.status_code == 201 and response.json()["status"] == "ineligible"


def _withdraw(api, token: str, code: str) -> None:
    response = api.client.post(
        f"{BASE}/participants/{code}/withdraw", json={"reason": "asked"}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text


def _close_window(db, code: str, timepoint: str) -> None:
    """Move the survey's window 200 days into the past: it was missed."""
    with db.engine.begin() as connection:
        for row_id, opens, closes in connection.execute(
            sa.text(
                "SELECT id, opens_on, closes_on FROM survey_instances "
                "WHERE participant_code = :c AND timepoint = :t"
            ),
            {"c": code, "t": timepoint},
        ).all():
            shift = timedelta(days=-200)
            connection.execute(
                sa.text("UPDATE survey_instances SET opens_on = :o, closes_on = :c WHERE id = :i"),
                {
                    "o": date.fromisoformat(str(opens)) + shift,
                    "c": date.fromisoformat(str(closes)) + shift,
                    "i": row_id,
                },
            )


def test_consort_counts_of_a_scripted_trial_match_exactly_and_the_diagram_shows_them(api, db):
    admin = api.admin_token
    # 3 screened out (two too young, one without internet), 8 enrolled.
    _screen_out(api, admin, age_18_plus=False)
    _screen_out(api, admin, age_18_plus=False)
    _screen_out(api, admin, internet_access=False)
    codes = [api.enroll(admin, site=("PHL", "PIT")[n % 2], diagnosis="bipolar") for n in range(8)]
    _withdraw(api, admin, codes[0])  # withdrawn before randomization
    # codes[1] waits for randomization; the six others are randomized
    arms = {}
    for code in codes[2:]:
        randomized = api.randomize(admin, code)
        assert randomized.status_code == 200, randomized.text
        arms[code] = randomized.json()["arm"]
    _withdraw(api, admin, codes[2])  # withdrawn after randomization
    _close_window(db, codes[3], "month_4")  # missed its 4-month survey

    report = api.client.get(f"{BASE}/reports/consort", headers=bearer(admin)).json()
    assert report["screened"] == 11
    assert report["ineligible"] == 3
    # Read as reasons for exclusion (the criteria's `fails_text`), not as the criteria.
    assert report["ineligible_by_reason"] == {
        "Younger than 18": 2,
        "No regular internet access": 1,
    }
    assert report["enrolled"] == 8
    assert report["withdrawn_before_randomization"] == 1
    assert report["awaiting_randomization"] == 1
    assert report["randomized"] == 6
    groups = {g["group"]: g for g in report["groups"]}  # the demo study shows arms to admins
    for arm in set(arms.values()):
        assert groups[arm]["randomized"] == list(arms.values()).count(arm)
    assert groups[arms[codes[2]]]["withdrawn"] == 1
    assert sum(g["withdrawn"] for g in groups.values()) == 1

    def at(arm: str, timepoint: str) -> dict[str, int]:
        return next(t for t in groups[arm]["timepoints"] if t["timepoint"] == timepoint)

    assert sum(at(a, "baseline")["completed"] for a in groups) == 6
    assert at(arms[codes[3]], "month_4")["missed"] == 1
    assert sum(at(a, "month_4")["missed"] for a in groups) == 1
    assert sum(at(a, "month_4")["pending"] for a in groups) == 4  # one missed, one cancelled

    retention = api.client.get(f"{BASE}/reports/retention", headers=bearer(admin)).json()
    month_4 = [r for r in retention["items"] if r["timepoint"] == "month_4"]
    assert sum(r["cancelled"] for r in month_4) == 1
    missed = next(r for r in month_4 if r["group"] == arms[codes[3]])
    assert missed["rate"] == 0.0
    balance = api.client.get(f"{BASE}/reports/balance", headers=bearer(admin)).json()["items"]
    bipolar = next(b for b in balance if (b["factor"], b["level"]) == ("diagnosis", "bipolar"))
    assert sum(bipolar["counts"].values()) == 6
    phl = next(b for b in balance if (b["factor"], b["level"]) == ("site", "PHL"))
    assert sum(phl["counts"].values()) == 3  # codes 2, 4, 6

    svg = api.client.get(f"{BASE}/reports/consort?format=svg", headers=bearer(admin))
    assert svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)
    assert root.tag == f"{SVG}svg"
    texts = [" ".join(" ".join(t.itertext()).split()) for t in root.iter(f"{SVG}text")]
    assert "Assessed for eligibility (n=11)" in texts
    assert "Randomized (n=6)" in texts
    assert any("Younger than 18 (n=2)" in t for t in texts)
    assert not any("Participant is 18 or older" in t for t in texts)
    assert any("Withdrew before randomization (n=1)" in t for t in texts)
    for arm in set(arms.values()):
        label = next(g["label"] for g in report["groups"] if g["group"] == arm)
        count = list(arms.values()).count(arm)
        assert any(t.startswith(f"Allocated to {label}") and f"(n={count})" in t for t in texts)


def test_consort_counts_leaving_by_kind_per_group_and_keeps_those_who_stopped_treatment(api):
    admin = api.admin_token
    codes = [api.enroll(admin) for _ in range(6)]
    arms = {}
    for code in codes:
        randomized = api.randomize(admin, code)
        assert randomized.status_code == 200, randomized.text
        arms[code] = randomized.json()["arm"]
    kinds = ["intervention", "intervention", "lost", "follow_up", "data", "died"]
    for code, kind in zip(codes, kinds, strict=True):
        left = api.client.post(
            f"{BASE}/participants/{code}/withdraw",
            json={"reason": "asked", "kind": kind},
            headers=bearer(admin),
        )
        assert left.status_code == 200, left.text
    # One who stopped the intervention later withdrew from follow-up: counted once, there.
    later = api.client.post(
        f"{BASE}/participants/{codes[1]}/withdraw",
        json={"reason": "asked", "kind": "follow_up"},
        headers=bearer(admin),
    )
    assert later.status_code == 200, later.text
    final = {code: kind for code, kind in zip(codes, kinds, strict=True)} | {codes[1]: "follow_up"}

    report = api.client.get(f"{BASE}/reports/consort", headers=bearer(admin)).json()
    fields = {
        "intervention": "discontinued_intervention",
        "lost": "lost_to_follow_up",
        "follow_up": "withdrew",
        "data": "withdrew_data",
        "died": "died",
    }
    for group in report["groups"]:
        mine = [final[c] for c in codes if arms[c] == group["group"]]
        for kind, field in fields.items():
            assert group[field] == mine.count(kind), (group, mine)
        assert group["withdrawn"] == sum(k != "intervention" for k in mine)
    assert sum(g["discontinued_intervention"] for g in report["groups"]) == 1
    assert sum(g["withdrawn"] for g in report["groups"]) == 5

    svg = api.client.get(f"{BASE}/reports/consort?format=svg", headers=bearer(admin))
    texts = [" ".join(" ".join(t.itertext()).split()) for t in ET.fromstring(svg.content).iter()]
    shown = [
        f"Discontinued intervention, still followed (n={g['discontinued_intervention']})"
        for g in report["groups"]
    ]
    assert all(line in texts for line in shown)
