"""Simulation before go-live: imbalance and guessability, as a trialist reads them."""

from __future__ import annotations

from app.randomization.blocks import ArmRatio
from app.randomization.simulation import simulate
from tests.helpers import STUDY, bearer

EQUAL = [ArmRatio("a", 1), ArmRatio("b", 1), ArmRatio("c", 1)]


def test_fixed_blocks_of_three_are_guessed_at_the_textbook_rate():
    # Blocks of 3 with 3 arms: guesses are right 1/3, 1/2 and 1 of the time by position.
    result = simulate(
        arms=EQUAL, block_sizes=[3], strata={"all": 1}, participants=3000, runs=5, seed=7
    )
    assert abs(result.correct_guess_rate - (1 / 3 + 1 / 2 + 1) / 3) < 0.02
    assert result.chance_guess_rate == 1 / 3
    # a single stratum is never more than 2/3 off its share with blocks of 3
    assert result.worst_max_imbalance <= 2 / 3 + 1e-9


def test_larger_random_blocks_are_harder_to_guess_but_less_balanced():
    strata = {f"site={s}|d={d}": 1.0 for s in ("A", "B") for d in ("x", "y", "z")}
    small = simulate(arms=EQUAL, block_sizes=[3], strata=strata, participants=300, runs=100, seed=1)
    large = simulate(
        arms=EQUAL, block_sizes=[6, 9, 12], strata=strata, participants=300, runs=100, seed=1
    )
    assert large.correct_guess_rate < small.correct_guess_rate
    assert large.mean_max_imbalance > small.mean_max_imbalance
    assert len(large.strata) == 6
    assert abs(sum(s.mean_size for s in large.strata) - 300) < 1e-9


def test_same_seed_same_report():
    args = {
        "arms": EQUAL,
        "block_sizes": [3, 6],
        "strata": {"all": 1},
        "participants": 90,
        "runs": 20,
    }
    assert simulate(**args, seed=3) == simulate(**args, seed=3)


def test_simulate_endpoint_reports_per_arm_and_per_stratum(api):
    response = api.client.post(
        f"/api/v1/studies/{STUDY}/simulate",
        json={
            "participants": 300,
            "runs": 50,
            "site_proportions": {"PHL": 3, "PIT": 1},
            "strata_proportions": {
                "diagnosis": {"schizophrenia_spectrum": 2, "bipolar": 1, "depressive": 1}
            },
            "seed": 11,
        },
        headers=bearer(api.admin_token),
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [a["arm"] for a in report["overall"]] == ["listserv", "bulletin_board", "control"]
    assert all(a["expected"] == 100 for a in report["overall"])
    shares = {s["stratum"]: s["proportion"] for s in report["strata"]}
    assert abs(shares["site=PHL|diagnosis=schizophrenia_spectrum"] - 0.375) < 1e-9
    assert 0 < report["correct_guess_rate"] < 1


def test_simulate_names_bad_input(api):
    response = api.client.post(
        f"/api/v1/studies/{STUDY}/simulate",
        json={
            "block_sizes": [4],
            "site_proportions": {"NYC": 1},
            "strata_proportions": {"age": {}},
        },
        headers=bearer(api.admin_token),
    )
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert locs == {
        ("body", "block_sizes", 0),
        ("body", "site_proportions", "NYC"),
        ("body", "strata_proportions", "age"),
    }
