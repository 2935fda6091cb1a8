"""The retention sections of the console (SPEC 11): the contact log and alternate
contacts on the participant's record, a reason on a missed survey's row, and who is due
for a call on the worklist; refused forms come back with errors beside their fields and
what was typed, nothing stored. The pages only call the services: SQLite alone."""

from __future__ import annotations

import pytest

from tests.console.conftest import signed_in  # noqa: F401  (the fixture)
from tests.helpers import STUDY
from tests.retention.test_api import SISTER, today
from tests.surveys.test_api import _shift_window

PAGES = f"/console/studies/{STUDY}"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_coordinator_logs_contacts_keeps_a_locator_and_says_why_a_survey_was_missed(
    api,
    db,
    signed_in,  # noqa: F811
):
    browser = signed_in("coordinator", "PHL")
    code = api.enroll(api.admin_token)
    record = f"{PAGES}/participants/{code}"
    page = browser.get(record)
    assert page.status_code == 200 and "Contact log" in page.text
    assert "No contact attempts logged yet." in page.text

    refused = browser.post(
        f"{record}/contacts", {"method": "", "note": "Tried <b>twice</b>"}, csrf_from=record
    )
    assert refused.status_code == 422
    assert "There is a problem" in refused.text and "<title>Error: " in refused.text
    assert "Choose how you tried to reach them" in refused.text
    assert "Choose what happened" in refused.text
    assert "Tried &lt;b&gt;twice&lt;/b&gt;" in refused.text  # kept, escaped
    logged = browser.post(
        f"{record}/contacts",
        {
            "method": "phone",
            "outcome": "left_message",
            "note": "Voicemail",
            "next_step_on": today(),
        },
        csrf_from=record,
    )
    assert logged.status_code == 303, logged.text
    page = browser.get(logged.headers["location"])
    assert "The contact attempt is logged." in page.text and "Voicemail" in page.text
    worklist = browser.get(f"{PAGES}/worklist")  # its next step is today: due for a call
    assert f"{code}</a></td><td>PHL</td><td>next step due" in worklist.text

    no_permission = browser.post(f"{record}/alternate-contacts", SISTER, csrf_from=record)
    assert no_permission.status_code == 422
    assert "Confirm the participant agreed" in no_permission.text
    assert 'value="Wilhelmina Fairweather"' in no_permission.text
    added = browser.post(
        f"{record}/alternate-contacts",
        SISTER | {"permission": "yes", "permission_on": today()},
        csrf_from=record,
    )
    assert added.status_code == 303, added.text
    page = browser.get(record)
    assert 'href="tel:+12158985000"' in page.text
    listed = api.client.get(
        f"/api/v1/studies/{STUDY}/participants/{code}/alternate-contacts",
        headers={"Authorization": f"Bearer {api.admin_token}"},
    ).json()["items"]
    removed = browser.post(
        f"{record}/alternate-contacts/{listed[0]['id']}/remove", {}, csrf_from=record
    )
    assert removed.status_code == 303
    assert "Wilhelmina" not in browser.get(record).text

    _shift_window(db, code, "baseline", days=-30)  # missed
    page = browser.get(record)
    assert 'id="reason-baseline"' in page.text
    missing = browser.post(f"{record}/surveys/baseline/missed-reason", {}, csrf_from=record)
    assert missing.status_code == 422 and 'href="#reason-baseline"' in missing.text
    given = browser.post(
        f"{record}/surveys/baseline/missed-reason", {"reason": "declined"}, csrf_from=record
    )
    assert given.status_code == 303, given.text
    assert '<option value="declined" selected>' in browser.get(record).text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_coordinator_corrects_the_contact_details_on_the_record(
    api,
    signed_in,  # noqa: F811
):
    browser = signed_in("coordinator", "PHL")
    code = api.enroll(api.admin_token)
    record = f"{PAGES}/participants/{code}"
    page = browser.get(record)
    assert "Correct the contact details" in page.text and 'value="Pat Doe"' in page.text
    typed = {"contact_name": "Pat Roe", "contact_email": "", "contact_phone": "12"}
    refused = browser.post(f"{record}/contact", typed, csrf_from=record)
    assert refused.status_code == 422
    assert "Enter a phone number like 215-555-0123" in refused.text
    assert 'value="Pat Roe"' in refused.text  # what was typed, kept
    typed["contact_phone"] = "(215) 898-5000"
    fixed = browser.post(f"{record}/contact", typed, csrf_from=record)
    assert fixed.status_code == 303, fixed.text
    page = browser.get(fixed.headers["location"])
    assert "The contact details are corrected." in page.text
    shown = api.client.get(
        f"/api/v1/studies/{STUDY}/participants/{code}",
        headers={"Authorization": f"Bearer {api.admin_token}"},
    ).json()["contact"]
    assert shown == {"name": "Pat Roe", "email": None, "phone": "+12158985000"}
