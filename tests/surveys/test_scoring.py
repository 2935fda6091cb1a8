"""Answers checked, scored and screened for alerts, as pure rules on the demo study."""

from __future__ import annotations

from app.demo import demo_definition
from app.studies.definition import Instrument, Item, ItemType, Score
from app.studies.validation import parse_definition
from app.surveys.scoring import answer_problem, check, raised_alerts, scores

DEMO = parse_definition(demo_definition())
INSTRUMENTS = {i.code: i for i in DEMO.instruments}
PHQ9 = INSTRUMENTS["phq9"]
WHO5 = INSTRUMENTS["who5"]
GX = INSTRUMENTS["group_experience"]


def _phq(**values: int) -> dict[str, int]:
    answers = {f"phq9_{i}": 0 for i in range(1, 10)}
    answers.update(values)
    return answers


def test_each_item_type_takes_its_own_values_only():
    def item(kind: ItemType, **extra):
        return Item(code="q", text="Q", type=kind, **extra)

    choice = item(ItemType.choice, options=[[0, "No"], [1, "Yes"]])
    assert answer_problem(choice, 1) is None
    for wrong in (2, "1", True, 1.0, None):
        assert answer_problem(choice, wrong) == "Choose one of the answers"
    multi = item(ItemType.multi_choice, options=[[1, "A"], [2, "B"]])
    assert answer_problem(multi, [1, 2]) is None
    assert answer_problem(multi, [1, 1]) is not None and answer_problem(multi, 1) is not None
    integer = item(ItemType.integer, min=0, max=10)
    assert answer_problem(integer, 10) is None
    assert answer_problem(integer, 11) == "Enter a whole number from 0 to 10"
    assert answer_problem(integer, 2.5) is not None and answer_problem(integer, True) is not None
    number = item(ItemType.number, min=0.5)
    assert answer_problem(number, 2.5) is None and answer_problem(number, float("nan")) is not None
    assert answer_problem(item(ItemType.date), "2028-02-29") is None
    assert answer_problem(item(ItemType.date), "2027-02-29") is not None
    assert answer_problem(item(ItemType.boolean), False) is None
    assert answer_problem(item(ItemType.boolean), 0) == "Choose yes or no"
    assert answer_problem(item(ItemType.text), "x" * 5001) is not None


def test_a_partial_save_needs_no_required_item_but_a_submission_does():
    partial = {"who5_1": 3}
    assert check(WHO5.items, partial, complete=False) == []
    missing = check(WHO5.items, partial, complete=True)
    assert [p.loc for p in missing] == [("who5_2",), ("who5_3",), ("who5_4",), ("who5_5",)]
    assert {p.msg for p in missing} == {"Choose an answer"}
    assert check(WHO5.items, {"nope": 1}, complete=False)[0].loc == ("nope",)


def test_sums_means_reverse_coding_and_min_answered():
    assert scores(PHQ9, _phq(phq9_1=3, phq9_9=2)) == {"phq9_total": 5.0}
    assert scores(PHQ9, {"phq9_1": 3}) == {"phq9_total": None}  # a sum needs every item
    assert scores(GX, {"gx_frequency": 4}) == {"gx_engagement": 4.0}  # mean of one (min 1)
    assert scores(GX, {"gx_frequency": 4, "gx_helpful": 1}) == {"gx_engagement": 2.5}
    assert scores(GX, {}) == {"gx_engagement": None}
    reversed_ = Instrument(
        code="r",
        title="R",
        items=[
            Item(code="a", text="A", type=ItemType.integer, min=1, max=5),
            Item(code="b", text="B", type=ItemType.integer, min=1, max=5),
        ],
        scores=[Score(code="s", method="sum", items=["a", "b"], reverse=["b"])],
    )
    assert scores(reversed_, {"a": 5, "b": 5}) == {"s": 6.0}  # 5 + (1 + 5 - 5)


def test_the_demo_alerts_on_self_harm_thoughts_and_on_a_severe_total():
    assert raised_alerts(DEMO.alerts, _phq(), scores(PHQ9, _phq())) == []
    self_harm = _phq(phq9_9=1)
    assert [r.code for r in raised_alerts(DEMO.alerts, self_harm, scores(PHQ9, self_harm))] == [
        "phq9_self_harm"
    ]
    severe = _phq(**{f"phq9_{i}": 3 for i in range(1, 8)})  # 21, item 9 at 0
    assert [r.code for r in raised_alerts(DEMO.alerts, severe, scores(PHQ9, severe))] == [
        "phq9_severe"
    ]


def test_numbers_too_large_to_score_and_week_dates_are_refused_not_a_fault():
    huge = 10**400  # JSON reads it as an int; float() of it overflows
    for kind in (ItemType.integer, ItemType.number):
        unbounded = Item(code="q", text="Q", type=kind)
        assert answer_problem(unbounded, huge) is not None
        assert answer_problem(unbounded, -huge) is not None
        assert answer_problem(unbounded, 10**12) is None
    assert answer_problem(Item(code="q", text="Q", type=ItemType.number), float("inf"))
    assert answer_problem(Item(code="d", text="D", type=ItemType.date), "2027-W01-1")
    assert answer_problem(Item(code="d", text="D", type=ItemType.date), "2027-01-04") is None
