"""The console's adverse-event pages (issue 15, items 2-4): an alert's acknowledgement
says what followed (no event with a note, or an event opened from the alert, its form
filled in from it), the event page with every version and its deadlines as a countdown,
the review form only for roles that may see arms, the deadlines not yet met on top of
the dashboard (oldest first), and another site's event is not found."""

from __future__ import annotations

import re
from datetime import date, timedelta

from app.demo import demo_definition
from tests.console.test_pages import S, _code, _enroll
from tests.helpers import BASELINE_ANSWERS, bearer

RULE = "Thoughts of self-harm (PHQ-9 item 9 above 0)"
# A serious, unexpected, related event: the demo study's IRB deadline (24 hours) applies.
SERIOUS = {
    "AETERM": "Admitted to hospital after a fall",
    "AESTDTC": "2025-06",
    "AESEV": "severe",
    "AESER": "yes",
    "AESHOSP": "yes",
    "AEREL": "possible",
    "AERELPROC": "not_related",
    "AEEXPECT": "no",
    "AEOUT": "recovering",
    "AEACN": "intervention_interrupted",
    "unanticipated": "no",
}


def _alerted(api, coordinator, *, study_path: str = S, study: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """An enrolled participant whose baseline raised the self-harm alert."""
    code = _code(_enroll(coordinator, study_path=study_path)[0])
    answers = {**BASELINE_ANSWERS, "phq9_9": 2}
    api.complete_survey(code, answers=answers, **({"study": study} if study else {}))
    return code


def _value(html: str, name: str) -> str | None:
    found = re.search(rf'name="{name}" type="[a-z]+" value="([^"]*)"', html)
    return found.group(1) if found else None


def _open(browser, code: str, fields: dict[str, str], *, study_path: str = S) -> str:  # type: ignore[no-untyped-def]
    """Open an event from the participant's new-event form; its page's path."""
    form = f"{study_path}/participants/{code}/events/new"
    done = browser.post(f"{study_path}/participants/{code}/events", fields, csrf_from=form)
    assert done.status_code == 303, done.text
    path: str = done.headers["location"].split("?")[0]
    return path


def test_acknowledging_an_alert_says_what_followed_and_an_event_is_filled_in_from_it(
    api, signed_in
):
    coordinator = signed_in("coordinator", "PHL")
    code = _alerted(api, coordinator)
    record = f"{S}/participants/{code}"
    html = coordinator.get(record).text
    assert "What followed the alert?" in html and "Open an adverse event" in html
    alert_id = re.search(r"/alerts/(\d+)/acknowledge", html).group(1)  # type: ignore[union-attr]
    acknowledge = f"{record}/alerts/{alert_id}/acknowledge"

    unsaid = coordinator.post(acknowledge, {"note": "Called"}, csrf_from=record)
    assert unsaid.status_code == 422 and "Choose what followed the alert" in unsaid.text
    assert 'href="#outcome"' in unsaid.text and "Called</textarea>" in unsaid.text  # kept
    no_note = coordinator.post(acknowledge, {"outcome": "no_event"}, csrf_from=record)
    assert no_note.status_code == 422 and "Enter a note" in no_note.text

    # "Open an adverse event": the form, filled in from the alert; the alert stays open.
    chosen = coordinator.post(acknowledge, {"outcome": "event"}, csrf_from=record)
    assert chosen.status_code == 303
    form_path = chosen.headers["location"]
    assert form_path == f"{record}/events/new?alert={alert_id}"
    form = coordinator.get(form_path).text
    assert _value(form, "AETERM") == RULE
    completed = _value(form, "AESTDTC")
    aware = _value(form, "aware_on")
    assert completed and aware and date.fromisoformat(completed) == date.fromisoformat(aware)
    assert f'name="alert" value="{alert_id}"' in form
    assert "Saving the event also acknowledges the alert" in form
    assert "Open safety alerts (1)" in coordinator.get(record).text

    # Saved with the rest of the report: the event is opened and the alert acknowledged.
    rest = {k: v for k, v in SERIOUS.items() if k not in ("AETERM", "AESTDTC")}
    missing = coordinator.post(
        f"{record}/events",
        {"alert": alert_id, "AETERM": RULE, "AESTDTC": completed, "aware_on": aware},
        csrf_from=form_path,
    )
    assert missing.status_code == 422 and "Choose how severe it is" in missing.text
    assert f'value="{RULE}"' in missing.text  # what was typed is shown again
    fields = {"alert": alert_id, "AETERM": RULE, "AESTDTC": completed, "aware_on": aware}
    event_path = _open(coordinator, code, {**fields, **rest})
    event = coordinator.get(event_path).text
    assert "Adverse event AE-1" in event and RULE in event
    after = coordinator.get(record).text
    assert "Open safety alerts" not in after and f'href="{event_path}">AE-1</a>' in after
    assert "Safety alert acknowledged" in after
    assert coordinator.get(form_path).status_code == 409  # one event per alert


def test_event_page_deadlines_dashboard_and_sites(api, signed_in, client):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    new_form_path = f"{S}/participants/{code}/events/new"
    new_form = coordinator.get(new_form_path).text
    today = date.fromisoformat(_value(new_form, "aware_on") or "")
    # The organ class is chosen among MedDRA's 27, nothing typed.
    assert '<select class="select" id="AEBODSYS" name="AEBODSYS"' in new_form
    assert '<option value="Product issues">Product issues</option>' in new_form
    typed = {**SERIOUS, "AEBODSYS": "Sam heard voices"}
    refused = coordinator.post(f"{S}/participants/{code}/events", typed, csrf_from=new_form_path)
    assert refused.status_code == 422 and 'id="AEBODSYS-error"' in refused.text
    # AE-1: known today (due within 24 hours); AE-2: known three days ago (overdue).
    coded = {"AEBODSYS": "Psychiatric disorders"}
    recent = _open(coordinator, code, {**SERIOUS, **coded, "aware_on": today.isoformat()})
    assert "Psychiatric disorders" in coordinator.get(recent).text
    late = _open(
        coordinator, code, {**SERIOUS, "aware_on": (today - timedelta(days=3)).isoformat()}
    )

    page = coordinator.get(late).text
    assert re.search(r"overdue by [23] days", page)
    assert re.search(r'<time datetime="[^"]+">\d+ \w+ 20\d\d \d\d:\d\d E[SD]T</time>', page)
    assert re.search(r"due in \d+ hours?", coordinator.get(recent).text)

    followed = coordinator.post(
        f"{late}/versions",
        {"kind": "follow_up", "AEOUT": "recovered", "note": "Home"},
        csrf_from=late,
    )
    assert followed.status_code == 303
    page = coordinator.get(followed.headers["location"]).text
    assert "The follow-up is saved." in page
    versions = page.split('class="list event-versions"', 1)[1]
    assert versions.index("1. First report") < versions.index("2. Follow-up")
    assert versions.count(coordinator.email) == 2 and "Home" in versions
    # Open label, yet the coordinator reports and a reviewer apart from them reviews.
    assert "Record a medical review" not in page

    listed = coordinator.get(f"{S}/events?status=open&serious=yes").text
    assert f'href="{recent}">AE-1</a>' in listed and f'href="{late}">AE-2</a>' in listed
    assert "No adverse events match." in coordinator.get(f"{S}/events?status=closed").text

    # The dashboard and the worklist: the overdue deadline first.
    for path in (S, f"{S}/worklist"):
        shown = coordinator.get(path).text
        top = shown.split("Reporting deadlines (2)", 1)[1].split("</table>", 1)[0]
        assert top.index(f'href="{late}"') < top.index(f'href="{recent}"'), path

    reported = coordinator.post(
        f"{late}/deadlines/irb_sae/report",
        {"reported_on": today.isoformat(), "reference": "IRB-2026-7"},
        csrf_from=late,
    )
    assert reported.status_code == 303
    page = coordinator.get(reported.headers["location"]).text
    assert "Reported on" in page and "IRB-2026-7" in page
    top = coordinator.get(S).text.split("Reporting deadlines (1)", 1)[1].split("</table>")[0]
    assert f'href="{recent}"' in top and f'href="{late}"' not in top

    # Another site's coordinator: neither the event nor the form is there for them.
    pittsburgh = signed_in("coordinator", "PIT")
    assert pittsburgh.get(late).status_code == 404
    assert pittsburgh.get(f"{S}/participants/{code}/events/new").status_code == 404
    assert "Reporting deadlines" not in pittsburgh.get(S).text
    # A safety reviewer (no dashboard) lands on the events and may review (open label).
    reviewer = signed_in("safety_reviewer")
    landed = reviewer.get(S)
    assert landed.status_code == 303 and landed.headers["location"] == f"{S}/events"
    dsmb = signed_in("dsmb_member").get(S)  # the DSMB's study opens on its report
    assert dsmb.status_code == 303 and dsmb.headers["location"] == f"{S}/reports/dsmb?part=open"
    assert "Record a medical review" in reviewer.get(late).text
    assert "Add a follow-up" not in reviewer.get(late).text  # recording is the team's
    # ...and may file the report of a deadline still open, as through the API.
    filed = reviewer.post(
        f"{recent}/deadlines/irb_sae/report",
        {"reported_on": today.isoformat(), "reference": "IRB-2026-8"},
        csrf_from=recent,
    )
    assert filed.status_code == 303 and "IRB-2026-8" in reviewer.get(recent).text
    # A statistician reads no safety records.
    assert signed_in("statistician").get(late).status_code == 403


def test_a_blind_role_sees_no_review_form_and_no_review_fields(api, signed_in, client):
    document = demo_definition() | {
        "slug": "blind-events",
        "blinding": {"arm_visible_to": ["admin", "unblinded_statistician"]},
    }
    admin = bearer(api.admin_token)
    assert client.post("/api/v1/studies", json=document, headers=admin).status_code == 201
    site = {"code": "PHL", "name": "Philadelphia"}
    assert client.post("/api/v1/studies/blind-events/sites", json=site, headers=admin).is_success
    assert client.post("/api/v1/studies/blind-events/activate", headers=admin).is_success
    study_path = "/console/studies/blind-events"
    coordinator = signed_in("coordinator", "PHL", study="blind-events")
    code = _code(_enroll(coordinator, study_path=study_path)[0])
    event = _open(coordinator, code, SERIOUS, study_path=study_path)
    assert "Record a medical review" not in coordinator.get(event).text

    reviewer = signed_in("admin")
    assert "Record a medical review" in reviewer.get(event).text
    reviewed = reviewer.post(
        f"{event}/versions",
        {"kind": "review", "AEREL": "definite", "AEEXPECT": "no", "note": "Reviewed: Q7"},
        csrf_from=event,
    )
    assert reviewed.status_code == 303, reviewed.text
    shown = reviewer.get(event).text
    assert '<h3 class="heading-small">Medical review</h3>' in shown
    reviewed = shown.split("Medical review</h3>", 1)[1].split("</dl>", 1)[0]
    assert "Definitely related" in reviewed and "Reviewed: Q7" in shown

    blind = coordinator.get(event).text
    versions = blind.split('class="list event-versions"', 1)[1].split("</ol>", 1)[0]
    assert "2. Medical review" in versions and "shown only to roles that may see arms" in versions
    assert "Definitely related" not in versions and "Reviewed: Q7" not in blind
    assert '<h3 class="heading-small">Medical review</h3>' not in blind  # no review block
    refused = coordinator.post(
        f"{event}/versions", {"kind": "review", "AEREL": "unlikely"}, csrf_from=event
    )
    assert refused.status_code == 403


def test_a_closure_says_when_the_team_learnt_how_it_ended(api, signed_in, client):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    new_form = coordinator.get(f"{S}/participants/{code}/events/new").text
    today = date.fromisoformat(_value(new_form, "aware_on") or "")
    event = _open(coordinator, code, {**SERIOUS, "aware_on": today.isoformat()})
    assert 'id="closure-aware_on"' in coordinator.get(event).text
    known = (today - timedelta(days=3)).isoformat()
    closed = coordinator.post(
        f"{event}/versions",
        {"kind": "closure", "AEOUT": "fatal", "AEENDTC": known, "aware_on": known},
        csrf_from=event,
    )
    assert closed.status_code == 303, closed.text
    page = coordinator.get(closed.headers["location"]).text
    # The DSMB's 48 hours ran from the day the team knew of the death: overdue now.
    deaths = page.split("(dsmb_death)", 1)[1].split("</tr>", 1)[0]
    assert "overdue by" in deaths
