"""The console's study pages, as each role sees them: the same rules, sites and
blinding as the API, forms that store nothing when they are wrong, and actions that
do what their button says."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditRecord
from app.demo import demo_definition
from app.outbox.models import MessageKind, OutboxMessage
from app.participants.models import Participant
from tests.console.conftest import ORIGIN, Browser, csrf_of, link_for
from tests.helpers import BASELINE_ANSWERS, STUDY, bearer

S = f"/console/studies/{STUDY}"
ELIGIBLE = {
    "site": "PHL",
    "screening-age_18_plus": "yes",
    "screening-smi_diagnosis": "yes",
    "screening-internet_access": "yes",
    "consent": "1.0",
    "strata-diagnosis": "bipolar",
    "contact-name": "Ann Example",
    "contact-email": "ann@example.org",
}
ARM_WORDS = ("listserv", "bulletin_board", "Email list-serv", "Bulletin board", "Control (usual")


def _enroll(browser, data=None, *, study_path: str = S):  # type: ignore[no-untyped-def]
    page = browser.get(f"{study_path}/enroll")
    assert page.status_code == 200, page.text
    form_id = re.search(r'name="form_id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": csrf_of(page.text), "form_id": form_id, **(data or ELIGIBLE)}
    return browser.client.post(f"{study_path}/enroll", data=form, headers=ORIGIN), form


def _code(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 303, response.text
    found = re.search(r"/participants/([\w-]+)\?done=", response.headers["location"])
    assert found
    return found.group(1)


def _today(browser, code: str) -> str:  # type: ignore[no-untyped-def]
    """Today in the study's time zone, as the leaving form gives it by default."""
    page = browser.get(f"{S}/participants/{code}/withdraw").text
    found = re.search(r'name="withdrawn_on" type="date" value="([\d-]+)"', page)
    assert found, "the leaving form has no date"
    return found.group(1)


def _participants(db) -> int:  # type: ignore[no-untyped-def]
    with db.session(write=False) as session:
        return session.scalar(select(func.count()).select_from(Participant)) or 0


def test_enrolling_through_the_form_shows_the_participant_with_the_survey_link(signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    done, _ = _enroll(coordinator)
    code = _code(done)
    page = coordinator.get(done.headers["location"])
    assert page.status_code == 200
    assert "The participant is enrolled." in page.text
    assert f"Participant {code}" in page.text and "Ann Example" in page.text
    assert re.search(r'value="http://testserver/s/[\w-]{43}" readonly', page.text)
    with db.session(write=False) as session:
        created = session.scalars(select(Participant)).one()
    assert created.strata == {"diagnosis": "bipolar"} and created.site.code == "PHL"


def test_a_form_with_errors_says_each_beside_its_field_keeps_what_was_typed_and_stores_nothing(
    signed_in, db
):
    coordinator = signed_in("coordinator", "PHL")
    wrong = {**ELIGIBLE, "contact-email": "not an address", "contact-name": "Zoë Ångström"}
    del wrong["strata-diagnosis"], wrong["screening-internet_access"]
    refused, _ = _enroll(coordinator, wrong)
    assert refused.status_code == 422
    html = refused.text
    assert "<title>Error: " in html and "There is a problem" in html
    for field in ("screening-internet_access", "strata-diagnosis", "contact-email"):
        assert f'<a href="#{field}">' in html, field
        assert f'id="{field}-error"' in html, field
    assert 'value="Zoë Ångström"' in html and 'value="not an address"' in html
    assert _participants(db) == 0


def test_an_ineligible_person_is_recorded_as_screened_without_contact_details(signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    data = {"site": "PHL", **{k: "yes" for k in ELIGIBLE if k.startswith("screening-")}}
    data["screening-age_18_plus"] = "no"
    done, _ = _enroll(coordinator, data)
    page = coordinator.get(done.headers["location"])
    assert "not eligible" in page.text and "ineligible" in page.text
    with db.session(write=False) as session:
        assert session.scalars(select(Participant.status)).one() == "ineligible"


def test_the_same_form_sent_twice_enrolls_once_and_both_go_to_the_participant(signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    first, form = _enroll(coordinator)
    second = coordinator.client.post(f"{S}/enroll", data=form, headers=ORIGIN)
    assert second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    assert _participants(db) == 1
    fresh, _ = _enroll(coordinator)  # a new copy of the form is a new person
    assert _code(fresh) != _code(first) and _participants(db) == 2


def test_a_coordinator_cannot_reach_another_sites_participant_by_address(signed_in, db):
    phl = signed_in("coordinator", "PHL")
    pit = signed_in("coordinator", "PIT")
    code = _code(_enroll(phl)[0])
    for path in (f"{S}/participants/{code}",):
        assert pit.get(path).status_code == 404
    token = csrf_of(pit.get(f"{S}/participants").text)
    for action in ("randomize", "withdraw", "surveys/baseline/reissue", "surveys/baseline/resend"):
        refused = pit.client.post(
            f"{S}/participants/{code}/{action}",
            data={"csrf_token": token, "reason": "x"},
            headers=ORIGIN,
        )
        assert refused.status_code == 404, action
    assert code not in pit.get(f"{S}/participants").text
    assert code not in pit.get(f"{S}/worklist").text
    assert pit.get(f"{S}/worklist?site=PHL").status_code == 404
    assert pit.get(f"{S}/enroll").text.count('name="site"') == 1  # only PIT offered
    wrong_site, _ = _enroll(pit, {**ELIGIBLE, "site": "PHL"})
    assert wrong_site.status_code == 403 and _participants(db) == 1


@pytest.mark.parametrize("path", ["/participants", "/enroll", "/worklist"])
def test_a_statistician_is_refused_the_pages_of_participants(signed_in, path):
    statistician = signed_in("statistician")
    refused = statistician.get(f"{S}{path}")
    assert refused.status_code == 403
    assert "You cannot do this" in refused.text


def _randomize_through_the_console(api, browser, study_path: str = S) -> str:  # type: ignore[no-untyped-def]
    code = _code(_enroll(browser, study_path=study_path)[0])
    slug = study_path.rsplit("/", 1)[1]
    api.complete_survey(code, study=slug)
    done = browser.post(
        f"{study_path}/participants/{code}/randomize",
        csrf_from=f"{study_path}/participants/{code}",
    )
    assert done.status_code == 303, done.text
    return code


def test_a_blinded_statistician_never_sees_an_arm_on_any_page(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    for _ in range(3):
        _randomize_through_the_console(api, coordinator)
    assert "Email list-serv" in coordinator.get(f"{S}/reports").text  # open label for them
    statistician = signed_in("statistician")
    for path in ("/console", S, f"{S}/reports", f"{S}/exports", f"{S}/reports/consort.svg"):
        shown = statistician.get(path)
        assert shown.status_code == 200, path
        for word in ARM_WORDS:
            assert word not in shown.text, (path, word)
    assert "G1" in statistician.get(f"{S}/reports").text
    assert "Unblinded dataset" not in statistician.get(f"{S}/exports").text


def test_a_blinded_coordinator_never_sees_an_arm_on_any_page(api, signed_in, client):
    definition = demo_definition()
    definition["slug"] = "blind-trial"
    definition["blinding"] = {"arm_visible_to": ["admin", "unblinded_statistician"]}
    # Surveys that differ by arm, open from randomization: one only the online arms
    # have, one whose pages have the online arms' extra questions.
    definition["schedule"] += [
        {"code": "feedback", "anchor": "randomization", "day": 0, "close_after": 14,
         "instruments": ["group_experience"]},
        {"code": "week_1", "anchor": "randomization", "day": 0, "close_after": 14,
         "instruments": ["who5", "group_experience"]},
    ]  # fmt: skip
    admin = bearer(api.admin_token)
    assert client.post("/api/v1/studies", json=definition, headers=admin).status_code == 201
    site = {"code": "PHL", "name": "Philadelphia"}
    added = client.post("/api/v1/studies/blind-trial/sites", json=site, headers=admin)
    assert added.status_code == 201
    assert client.post("/api/v1/studies/blind-trial/activate", headers=admin).status_code == 200
    coordinator = signed_in("coordinator", "PHL", study="blind-trial")
    study_path = "/console/studies/blind-trial"
    codes = [_randomize_through_the_console(api, coordinator, study_path) for _ in range(6)]
    unblinded = client.post(
        f"/api/v1/studies/blind-trial/participants/{codes[0]}/unblind",
        json={"reason": "SAE review: the participant is in Email list-serv"},
        headers=admin,
    )
    assert unblinded.status_code == 200
    pages = ["/console", study_path, f"{study_path}/participants", f"{study_path}/worklist"]
    pages += [f"{study_path}/worklist?format=csv", f"{study_path}/reports"]
    pages += [f"{study_path}/reports/consort.svg"]
    pages += [f"{study_path}/participants/{code}" for code in codes]
    for path in pages:
        shown = coordinator.get(path)
        assert shown.status_code == 200, path
        for word in (*ARM_WORDS, "Feedback survey", "feedback", "Your online group"):
            assert word not in shown.text, (path, word)
    page = coordinator.get(f"{study_path}/participants/{codes[0]}").text
    assert "Week 1 survey" in page and "randomized" in page
    assert "Arm revealed (unblinded)" in page and "SAE review" not in page
    assert "the participant gets it by email" in page.lower()
    assert "/s/" not in page.split("Week 1 survey", 2)[-1].split("</div>")[0]


def test_the_participant_page_actions_do_what_they_say(api, signed_in, client, db):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    page_path = f"{S}/participants/{code}"
    old = api.survey_token(code)

    reissued = coordinator.post(f"{page_path}/surveys/baseline/reissue", csrf_from=page_path)
    assert reissued.status_code == 303
    assert client.get(f"/api/v1/surveys/{old}").status_code == 410
    assert "The old link no longer works" in coordinator.get(reissued.headers["location"]).text

    resent = coordinator.post(f"{page_path}/surveys/baseline/resend", csrf_from=page_path)
    assert resent.status_code == 303
    with db.session(write=False) as session:
        queued = session.scalars(select(OutboxMessage.kind)).all()
    # The new link's email is queued; the resend finds it queued and adds none (API.md).
    assert queued == [MessageKind.link_reissued]

    api.complete_survey(code, answers={**BASELINE_ANSWERS, "phq9_9": 2})
    with_alert = coordinator.get(page_path).text
    assert "Thoughts of self-harm" in with_alert and "Acknowledge the alert" in with_alert
    listed = coordinator.get(S).text.split("Open safety alerts")[1].split("<h2")[0]
    assert code in listed and "Thoughts of self-harm" in listed
    alert_id = re.search(r"/alerts/(\d+)/acknowledge", with_alert).group(1)  # type: ignore[union-attr]
    no_note = coordinator.post(
        f"{page_path}/alerts/{alert_id}/acknowledge",
        {"outcome": "no_event", "note": " "},
        csrf_from=page_path,
    )
    assert no_note.status_code == 422 and "Enter a note" in no_note.text
    assert "Thoughts of self-harm" in no_note.text  # says which alert
    noted = coordinator.post(
        f"{page_path}/alerts/{alert_id}/acknowledge",
        {"outcome": "no_event", "note": "Called; safety plan in place"},
        csrf_from=page_path,
    )
    assert noted.status_code == 303
    open_alerts = coordinator.get(S).text.split("Open safety alerts")[1].split("<h2")[0]
    assert "No open safety alerts." in open_alerts and code not in open_alerts

    randomized = coordinator.post(f"{page_path}/randomize", csrf_from=page_path)
    assert randomized.status_code == 303
    shown = coordinator.get(page_path).text
    assert "The participant is randomized." not in shown  # the notice is for the redirect
    assert "Arm" in shown and any(w in shown for w in ("Email list-serv", "Bulletin", "Control"))
    twice = coordinator.post(f"{page_path}/randomize", csrf_from=f"{S}/participants")
    assert twice.status_code == 409

    leaving = {"kind": "follow_up", "category": "moved", "withdrawn_on": _today(coordinator, code)}
    no_reason = coordinator.post(f"{page_path}/withdraw", {**leaving, "reason": ""})
    assert no_reason.status_code == 422 and "Enter why" in no_reason.text
    withdrawn = coordinator.post(f"{page_path}/withdraw", {**leaving, "reason": "Moved away"})
    assert withdrawn.status_code == 303
    history = coordinator.get(page_path).text
    for action in (
        "participant.enrolled",
        "survey.link_reissued",
        "survey.invitation_resent",
        "participant.randomized",
        "participant.withdrawn",
    ):
        assert action in history, action
    assert "Moved away" in history


def test_the_worklist_filters_sorts_pages_and_downloads_only_my_sites(api, signed_in):
    phl = signed_in("coordinator", "PHL")
    pit = signed_in("coordinator", "PIT")
    mine = [_code(_enroll(phl)[0]) for _ in range(3)]
    theirs = _code(_enroll(pit, {**ELIGIBLE, "site": "PIT"})[0])
    api.complete_survey(mine[0])
    listed = phl.get(f"{S}/worklist?status=open&sort=participant").text
    assert [c for c in re.findall(r">(PS-P\w\w-\d+)</a>", listed)] == sorted(mine[1:])
    assert theirs not in listed
    assert phl.get(f"{S}/worklist?page=2").text.count("/participants/PS-") == 0
    downloaded = phl.get(f"{S}/worklist?format=csv&sort=participant")
    assert downloaded.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(downloaded.text)))
    assert [r["participant"] for r in rows] == sorted(mine)
    assert {r["status"] for r in rows} == {"open", "completed"}


def test_exports_download_from_the_console_and_are_audited(api, signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    _randomize_through_the_console(api, coordinator)
    statistician = signed_in("statistician")
    blinded = statistician.get(f"{S}/exports/blinded?format=csv&shape=wide")
    assert blinded.status_code == 200 and "pseudonym" in blinded.text.splitlines()[0]
    package = statistician.get(f"{S}/exports/package")
    assert package.status_code == 200
    assert "datapackage.json" in zipfile.ZipFile(io.BytesIO(package.content)).namelist()
    codebook = statistician.get(f"{S}/exports/codebook?shape=long")
    assert codebook.status_code == 200 and "phq9_9" in codebook.text
    refused = statistician.client.post(
        f"{S}/exports/unblinded",
        data={"csrf_token": csrf_of(statistician.get("/console").text), "reason": "x"},
        headers=ORIGIN,
    )
    assert refused.status_code == 403

    unblinded = signed_in("unblinded_statistician")
    assert "Unblinded dataset" in unblinded.get(f"{S}/exports").text
    no_reason = unblinded.post(f"{S}/exports/unblinded", {"reason": ""}, csrf_from=f"{S}/exports")
    assert no_reason.status_code == 422 and "Enter why the arms are needed" in no_reason.text
    done = unblinded.post(
        f"{S}/exports/unblinded",
        {"reason": "DSMB closed session", "format": "csv"},
        csrf_from=f"{S}/exports",
    )
    assert done.status_code == 200 and ",arm," in done.text.splitlines()[0]
    with db.session(write=False) as session:
        reasons = [
            r.reason
            for r in session.scalars(
                select(AuditRecord).where(AuditRecord.action == "export.started")
            )
        ]
    assert "DSMB closed session" in reasons and len(reasons) == 3  # dataset, package, unblinded


def test_the_dashboard_counts_recruitment_against_each_sites_target(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    _randomize_through_the_console(api, coordinator)
    _enroll(coordinator)
    html = signed_in("statistician").get(S).text
    row = re.search(r"Philadelphia \(PHL\)</th>(.*?)</tr>", html, re.S).group(1)  # type: ignore[union-attr]
    cells = re.findall(r'<td class="num">([^<]+)</td>', row)
    # The share of the target is never rounded to 0% (nor 1 of 150 up to 1%).
    assert cells == ["2", "2", "1", "0", "150", "1 of 150 (0.7%)"]
    assert "Open safety alerts" not in html  # a statistician sees no participant codes


def test_an_alert_is_acknowledged_only_on_its_own_participants_page(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    alerted = _code(_enroll(coordinator)[0])
    other = _code(_enroll(coordinator)[0])
    api.complete_survey(alerted, answers={**BASELINE_ANSWERS, "phq9_9": 1})
    page = coordinator.get(f"{S}/participants/{alerted}").text
    alert_id = re.search(r"/alerts/(\d+)/acknowledge", page).group(1)  # type: ignore[union-attr]
    elsewhere = coordinator.post(
        f"{S}/participants/{other}/alerts/{alert_id}/acknowledge",
        {"note": "wrong page"},
        csrf_from=f"{S}/participants/{other}",
    )
    assert elsewhere.status_code == 404
    assert "Acknowledge the alert" in coordinator.get(f"{S}/participants/{alerted}").text


def test_text_no_database_can_keep_is_refused_and_nothing_is_stored(signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    refused, _ = _enroll(coordinator, {**ELIGIBLE, "contact-name": "Ann\x00Example"})
    assert refused.status_code == 422
    assert _participants(db) == 0
    code = _code(_enroll(coordinator)[0])
    page_path = f"{S}/participants/{code}"
    leaving = {"kind": "follow_up", "category": "moved", "withdrawn_on": _today(coordinator, code)}
    nul = coordinator.post(f"{page_path}/withdraw", {**leaving, "reason": "moved\x00away"})
    assert nul.status_code == 422
    assert "withdrawn" not in coordinator.get(page_path).text.split("History")[0]


def test_a_download_started_by_another_sites_page_is_refused(api, signed_in, db):
    statistician = signed_in("statistician")
    for path in ("/exports/blinded?format=csv", "/exports/package"):
        refused = statistician.get(f"{S}{path}", headers={"Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403, path
        own = statistician.get(f"{S}{path}", headers={"Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 200, path
    with db.session(write=False) as session:
        started = session.scalars(
            select(AuditRecord.action).where(AuditRecord.action == "export.started")
        ).all()
    assert len(started) == 2


def test_a_sent_form_sent_again_with_other_answers_is_refused_not_taken_for_the_first(
    signed_in, db
):
    coordinator = signed_in("coordinator", "PHL")
    _, form = _enroll(coordinator)
    edited = {**form, "contact-name": "Bo Other"}
    again = coordinator.client.post(f"{S}/enroll", data=edited, headers=ORIGIN)
    assert again.status_code == 409 and "already sent" in again.text
    assert _participants(db) == 1


@pytest.fixture(scope="module")
def fifty_five(module_api, module_db) -> tuple[Browser, set[str]]:
    """A coordinator of PHL signed in to the console, and 55 participants enrolled there
    the same day (the same survey: ties on every sort): made once per backend, read by
    each sort's case (enrolling them for each case was most of the test's time)."""
    email = "coordinator-worklist@example.org"
    module_api.user("coordinator", "PHL", email=email)
    coordinator = Browser(module_api.client, email)
    assert coordinator.open_link(link_for(module_db, email)).status_code == 303
    token = module_api.user("coordinator", "PHL")
    return coordinator, {module_api.enroll(token) for _ in range(55)}


@pytest.mark.parametrize("sort", ["participant", "timepoint", "closes_on", "opens_on"])
def test_worklist_pages_show_every_survey_once_in_any_order(fifty_five, sort):
    coordinator, codes = fifty_five
    seen: list[str] = []
    for page in (1, 2):
        html = coordinator.get(f"{S}/worklist?sort={sort}&page={page}").text
        seen += re.findall(r">(PS-PHL-\d+)</a>", html)
    assert sorted(seen) == sorted(codes)


def test_randomize_now_is_offered_when_the_study_needs_no_survey_first(api, signed_in, client):
    definition = demo_definition()
    definition["slug"] = "quick-trial"
    definition["randomization"]["requires_completed"] = []
    admin = bearer(api.admin_token)
    assert client.post("/api/v1/studies", json=definition, headers=admin).status_code == 201
    site = {"code": "PHL", "name": "Philadelphia"}
    assert client.post("/api/v1/studies/quick-trial/sites", json=site, headers=admin).is_success
    assert client.post("/api/v1/studies/quick-trial/activate", headers=admin).is_success
    study_path = "/console/studies/quick-trial"
    assert "Randomize now" not in signed_in("coordinator", "PHL").get(f"{S}/enroll").text
    coordinator = signed_in("coordinator", "PHL", study="quick-trial")
    assert "Randomize now, if eligible" in coordinator.get(f"{study_path}/enroll").text
    done, _ = _enroll(coordinator, {**ELIGIBLE, "randomize": "yes"}, study_path=study_path)
    assert done.headers["location"].endswith("?done=randomized")
    page = coordinator.get(done.headers["location"]).text
    assert "The participant is randomized." in page and "Arm" in page
