"""The participant's record page as each role reads it (without a browser): open safety
alerts first with the answer and score that raised them, the timepoints x instruments
grid in words, each completed survey's answers, scores and corrections, the links to
enter or correct answers, statuses in words, and a history with alert events.

The blind coordinator's record of participants in different arms is compared in
tests/blinding/test_record.py."""

from __future__ import annotations

import re

from app.demo import demo_definition
from tests.console.test_pages import ARM_WORDS, S, _code, _enroll
from tests.helpers import BASELINE_ANSWERS, STUDY, bearer

SELF_HARM = "Thoughts that you would be better off dead or of hurting yourself in some way"
ALERT = "Thoughts of self-harm (PHQ-9 item 9 above 0)"


def _before(html: str, first: str, then: str) -> bool:
    return first in html and then in html and html.index(first) < html.index(then)


def test_the_record_shows_open_alerts_with_the_answer_above_any_action(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    api.complete_survey(code, answers={**BASELINE_ANSWERS, "phq9_9": 2})
    html = coordinator.get(f"{S}/participants/{code}").text

    alerts = html.index("Open safety alerts (1)")
    assert alerts < html.index('<dl class="summary">')  # above the status and contact
    assert _before(html, "Open safety alerts", f'action="{S}/participants/{code}/randomize"')
    box = html[alerts : html.index("</section>", alerts)]
    assert ALERT in box and SELF_HARM in box
    assert "More than half the days" in box  # the answer in words, not its code 2
    assert "phq9_total)</span></dt><dd>10</dd>" in box  # 8 items at 1, item 9 at 2
    assert re.search(r"Raised</dt><dd>\d{1,2} \w{3} \d{4} \d\d:\d\d <strong[^>]*>open ", box)
    assert "Acknowledge the alert" in box


def test_the_grid_answers_and_entry_links_of_a_completed_and_an_open_survey(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    page_path = f"{S}/participants/{code}"
    before = coordinator.get(page_path).text
    assert '<th scope="row">Baseline survey</th>' in before
    assert re.search(r'<td class="cell-open">Open until \d{1,2} \w{3} \d{4}</td>', before)
    assert f'href="{page_path}/surveys/baseline/enter"' in before
    assert "/surveys/baseline/correct" not in before and "Answers and scores" not in before

    api.complete_survey(code)
    coordinator_token = api.user("coordinator", "PHL")
    fixed = api.client.post(
        f"/api/v1/studies/{STUDY}/participants/{code}/surveys/baseline/corrections",
        json={"item": "who5_2", "value": 5, "reason": "Misheard on the phone"},
        headers=bearer(coordinator_token),
    )
    assert fixed.status_code == 201, fixed.text
    assert api.randomize(api.admin_token, code).status_code == 200
    html = coordinator.get(page_path).text
    grid = html[html.index('<table class="table table-grid">') : html.index("</table>")]
    assert "<caption" in grid and '<th scope="col">WHO-5 Well-Being Index</th>' in grid
    assert re.search(r'<a href="#answers-baseline">Completed \d{1,2} \w{3} \d{4}', grid)
    assert "Not yet open (opens " in grid  # month 4, after the randomization
    baseline = grid.split("Month 4 survey")[0]
    assert baseline.count("Not asked") == 1  # the group's questions: not at baseline
    arm_cell = "Not in this arm" in grid  # the control arm has no group questions
    assert arm_cell == ("Control (usual care)" in html)
    assert f'href="{page_path}/surveys/baseline/correct"' in html
    assert "/surveys/baseline/enter" not in html

    answers = html[html.index('<details class="answers" id="answers-baseline">') :]
    answers = answers[: answers.index("</details>")]
    assert "I have felt cheerful and in good spirits</dt><dd>More than half of the time" in answers
    assert "Answered by the participant through their link." in answers
    assert "(who5_raw)</span></dt><dd>17</dd>" in answers  # 4 items at 3, the corrected at 5
    assert "“I have felt calm and relaxed”: More than half of the time → All of the time" in answers
    assert "Misheard on the phone" in answers
    history = html[html.index('<h2 class="heading-medium">History</h2>') :]
    assert (
        "Survey answer corrected: Baseline survey: “I have felt calm and relaxed” from" in history
    )


def test_statuses_leaving_and_alert_events_are_in_words(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    page_path = f"{S}/participants/{code}"
    assert (
        f"{code}</a></td><td>PHL</td><td>Enrolled</td>" in coordinator.get(f"{S}/participants").text
    )
    api.complete_survey(code, answers={**BASELINE_ANSWERS, "phq9_9": 1})
    alert_id = re.search(r"/alerts/(\d+)/acknowledge", coordinator.get(page_path).text).group(1)  # type: ignore[union-attr]
    noted = coordinator.post(
        f"{page_path}/alerts/{alert_id}/acknowledge",
        {"outcome": "no_event", "note": "Called; safe"},
        csrf_from=page_path,
    )
    assert noted.status_code == 303
    assert api.randomize(api.admin_token, code).status_code == 200
    left = api.client.post(
        f"/api/v1/studies/{STUDY}/participants/{code}/withdraw",
        json={"reason": "Moving abroad", "kind": "lost", "category": "moved"},
        headers=bearer(api.admin_token),
    )
    assert left.status_code == 200, left.text
    html = coordinator.get(page_path).text
    assert '<strong class="tag tag-withdrawn">Lost to follow-up</strong>' in html
    assert "Left the study</dt><dd>Lost to follow-up, " in html
    assert "Reason for leaving</dt><dd>Moved away: Moving abroad" in html
    assert "Open safety alerts" not in html
    acknowledged = html[html.index("Acknowledged safety alerts") :]
    assert "Acknowledged " in acknowledged and "Called; safe" in acknowledged
    assert "Several days" in acknowledged  # the answer that raised it, still shown
    history = html[html.index('<h2 class="heading-medium">History</h2>') :]
    assert f"Safety alert raised: {ALERT}" in history
    assert f"Safety alert acknowledged: {ALERT}" in history and "Called; safe" in history
    assert '<td class="cell-cancelled">Cancelled</td>' in html  # the follow-ups' cells
    listed = coordinator.get(f"{S}/participants").text
    assert f"{code}</a></td><td>PHL</td><td>Lost to follow-up</td>" in listed
    assert '<option value="withdrawn">Withdrawn</option>' in listed


def test_a_blind_coordinators_record_names_no_arm_limited_instrument(api, signed_in, client):
    document = demo_definition() | {
        "slug": "blind-record-pages",
        "blinding": {"arm_visible_to": ["admin", "unblinded_statistician"]},
    }
    admin = bearer(api.admin_token)
    assert client.post("/api/v1/studies", json=document, headers=admin).status_code == 201
    site = {"code": "PHL", "name": "Philadelphia"}
    added = client.post(f"/api/v1/studies/{document['slug']}/sites", json=site, headers=admin)
    assert added.status_code == 201, added.text
    started = client.post(f"/api/v1/studies/{document['slug']}/activate", headers=admin)
    assert started.status_code == 200, started.text
    coordinator = signed_in("coordinator", "PHL", study=document["slug"])
    study_path = f"/console/studies/{document['slug']}"
    code = _code(_enroll(coordinator, study_path=study_path)[0])
    api.complete_survey(code, study=document["slug"])
    assert api.randomize(api.admin_token, code, study=document["slug"]).status_code == 200
    html = coordinator.get(f"{study_path}/participants/{code}").text
    for word in (*ARM_WORDS, "Your online group", "Not in this arm", "gx_"):
        assert word not in html, word
    assert "Month 4 survey" in html and "Not yet open (opens " in html
    seeing = signed_in("admin", study=document["slug"])
    assert "Your online group" in seeing.get(f"{study_path}/participants/{code}").text
