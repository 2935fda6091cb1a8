"""Protocol deviations in the console: recorded from the participant's record, listed
with proposals to decide first, confirmed and dismissed from the list, followed up on
their own page; refused forms keep what was typed, with errors beside the fields."""

from __future__ import annotations

from datetime import timedelta

from app.scheduler.runner import run_pass
from tests.console.conftest import signed_in  # noqa: F401  (the fixture)
from tests.helpers import STUDY
from tests.safety.test_deviations import _enter_late, _today, bearer

STUDY_PAGES = f"/console/studies/{STUDY}"


def test_a_coordinator_records_decides_and_follows_up_deviations_in_the_console(
    api,
    db,
    signed_in,  # noqa: F811
):
    browser = signed_in("coordinator", "PHL")
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    late = api.enroll(coordinator)
    _enter_late(api, db, coordinator, late, interviewed_on=_today())

    record = browser.get(f"{STUDY_PAGES}/participants/{code}")
    assert f"{STUDY_PAGES}/participants/{code}/deviations/new" in record.text
    assert 'href="/console/studies/peer-support/deviations"' in record.text  # navigation
    form = f"{STUDY_PAGES}/participants/{code}/deviations/new"
    assert browser.get(form).status_code == 200
    refused = browser.post(
        form,
        {
            "category": "",
            "occurred_on": (_today() + timedelta(days=1)).isoformat(),
            "description": "Signed the old form <b>",
            "important": "",
        },
    )
    assert refused.status_code == 422
    assert refused.text.count('class="error-message"') == 2  # category, important
    assert "Choose the kind of deviation" in refused.text
    assert "Signed the old form &lt;b&gt;" in refused.text  # kept, escaped
    future = browser.post(
        form,
        {
            "category": "consent_error",
            "occurred_on": (_today() + timedelta(days=1)).isoformat(),
            "description": "Signed the old form",
            "important": "no",
        },
    )
    assert future.status_code == 422 and "is in the future" in future.text
    done = browser.post(
        form,
        {
            "category": "consent_error",
            "occurred_on": _today().isoformat(),
            "description": "Signed the old form",
            "important": "yes",
            "corrective_action": "",
        },
    )
    assert done.status_code == 303, done.text
    page = browser.get(done.headers["location"])
    assert page.status_code == 200 and "Deviation PD-1: Consent error" in page.text
    assert "The deviation is recorded." in page.text and "Add a follow-up" in page.text

    found = browser.post(f"{STUDY_PAGES}/deviations/propose", csrf_from=f"{STUDY_PAGES}/deviations")
    assert found.status_code == 303 and found.headers["location"].endswith("done=found")
    listing = browser.get(f"{STUDY_PAGES}/deviations")
    assert "To decide (1)" in listing.text and "Survey done outside its window" in listing.text
    assert listing.text.index("To decide") < listing.text.index("PD-1</a>")
    assert run_pass(db).proposed == 0  # already proposed from the button

    proposal = api.client.get(
        f"/api/v1/studies/{STUDY}/deviations?state=proposed", headers=bearer(coordinator)
    ).json()["items"][0]
    versions = f"{STUDY_PAGES}/deviations/{proposal['id']}/versions"
    no_note = browser.post(
        versions, {"kind": "dismissal", "note": ""}, csrf_from=f"{STUDY_PAGES}/deviations"
    )
    assert no_note.status_code == 422 and "Say why this is no deviation" in no_note.text
    undecided = browser.post(versions, {"note": "hm"}, csrf_from=f"{STUDY_PAGES}/deviations")
    assert undecided.status_code == 422 and "Choose whether this is a protocol" in undecided.text
    confirmed = browser.post(
        versions, {"kind": "confirmation"}, csrf_from=f"{STUDY_PAGES}/deviations"
    )
    assert confirmed.status_code == 303
    again = browser.post(versions, {"kind": "confirmation"}, csrf_from=f"{STUDY_PAGES}/deviations")
    assert again.status_code == 409
    follow = browser.post(
        versions,
        {"kind": "follow_up", "important": "", "corrective_action": "", "note": "PI told"},
        csrf_from=f"{STUDY_PAGES}/deviations/{proposal['id']}",
    )
    assert follow.status_code == 303
    shown = browser.get(f"{STUDY_PAGES}/deviations/{proposal['id']}")
    assert shown.text.index("Proposed by Trialdesk") < shown.text.index("Confirmed")
    assert shown.text.index("Confirmed") < shown.text.index("Note: PI told")
    assert "To decide (0)" in browser.get(f"{STUDY_PAGES}/deviations").text


def test_roles_without_safety_records_cannot_open_the_pages(api, signed_in):  # noqa: F811
    statistician = signed_in("statistician")
    assert statistician.get(f"{STUDY_PAGES}/deviations").status_code == 403
    reviewer = signed_in("safety_reviewer")
    listing = reviewer.get(f"{STUDY_PAGES}/deviations")
    assert listing.status_code == 200 and "Look for deviations now" not in listing.text
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    assert reviewer.get(f"{STUDY_PAGES}/participants/{code}/deviations/new").status_code == 403
