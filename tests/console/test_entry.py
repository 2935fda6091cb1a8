"""The console's staff data entry, corrections and leaving forms: good input stored and
audited, bad input answered with a 422 page that puts each error beside its field and
stores nothing, and a blind role refused the surveys only some arms have, alike for
every arm."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.audit.models import AuditRecord
from app.participants.models import Participant
from app.surveys.models import AnswerCorrection, SurveyInstance
from tests.blinding import harness
from tests.console.conftest import ORIGIN, csrf_of
from tests.helpers import BASELINE_ANSWERS, STUDY

S = f"/console/studies/{STUDY}"
FORM_ANSWERS = {code: str(value) for code, value in BASELINE_ANSWERS.items()}


def _instance(db, code: str, timepoint: str = "baseline") -> SurveyInstance:  # type: ignore[no-untyped-def]
    with db.session(write=False) as session:
        found = session.scalars(
            select(SurveyInstance).where(
                SurveyInstance.participant_code == code, SurveyInstance.timepoint == timepoint
            )
        ).one()
        session.expunge(found)
        return found


def _actions(db, code: str) -> list[AuditRecord]:  # type: ignore[no-untyped-def]
    with db.session(write=False) as session:
        records = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.entity_id.like(f"{code}%"))
            .order_by(AuditRecord.seq)
        ).all()
        return [(r.action, r.actor, r.changes, r.reason) for r in records]  # type: ignore[misc]


def _today(page: str) -> str:
    found = re.search(
        r'id="interviewed_on" name="interviewed_on" type="date" value="([\d-]+)"', page
    )
    assert found, "the interview date has no default"
    return found.group(1)


def _post(browser, path: str, data: dict[str, str | list[str]]):  # type: ignore[no-untyped-def]
    page = browser.get(path.split("?")[0])
    return browser.client.post(
        path, data={"csrf_token": csrf_of(page.text), **data}, headers=ORIGIN
    )


def test_a_phone_interview_entered_and_submitted_is_stored_and_audited(api, signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    code = api.enroll(api.admin_token)
    enter = f"{S}/participants/{code}/surveys/baseline/enter"
    page = coordinator.get(enter)
    assert page.status_code == 200, page.text
    html = page.text
    assert "Was the assessor blind to the arm?" in html and 'type="date"' in html
    assert 'name="phq9_1" value="0"' in html and "Not at all" in html  # radios, labelled
    assert 'value="save">Save<' in html and 'value="submit">Submit<' in html
    today = _today(html)

    saved = _post(coordinator, enter, {"who5_1": "4", "interviewed_on": today, "action": "save"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("/enter?done=saved")
    again = coordinator.get(saved.headers["location"]).text
    assert "The answers are saved" in again
    assert re.search(r'id="who5_1-2" name="who5_1" value="4" checked', again)

    done = _post(
        coordinator,
        enter,
        {**FORM_ANSWERS, "interviewed_on": today, "assessor_blind": "no", "action": "submit"},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{S}/participants/{code}?done=entered"
    shown = coordinator.get(done.headers["location"]).text
    assert "The answers are entered and the survey is complete." in shown
    stored = _instance(db, code)
    assert stored.completed_at is not None and stored.mode == "staff"
    assert stored.answers == BASELINE_ANSWERS and stored.assessor_blind is False
    assert stored.interviewed_on is not None and stored.interviewed_on.isoformat() == today
    submitted = [a for a in _actions(db, code) if a[0] == "survey.submitted"]
    assert len(submitted) == 1 and submitted[0][1] == coordinator.email
    assert submitted[0][2]["_mode"]["new"] == "staff"
    assert submitted[0][2]["_assessor_blind"]["new"] is False
    # Completed: the page now sends to corrections instead of a form.
    assert "correct an answer" in coordinator.get(enter).text


def test_wrong_answers_are_shown_beside_their_questions_and_nothing_is_stored(api, signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    code = api.enroll(api.admin_token)
    enter = f"{S}/participants/{code}/surveys/baseline/enter"
    wrong = {**FORM_ANSWERS, "who5_2": "9", "assessor_blind": "maybe", "action": "submit"}
    del wrong["phq9_3"]
    refused = _post(coordinator, enter, {**wrong, "interviewed_on": "2999-01-01"})
    assert refused.status_code == 422
    html = refused.text
    assert "<title>Error: " in html and "There is a problem" in html
    for field in ("assessor_blind", "who5_2"):
        assert f'id="{field}-error"' in html, field
        assert f'href="#{field}"' in html, field
    assert 'name="who5_1" value="3" checked' in html  # what was chosen is shown again
    # A future interview date, and a question left out, once the form reads.
    late = _post(coordinator, enter, {**FORM_ANSWERS, "interviewed_on": "2999-01-01",
                                      "action": "submit"})  # fmt: skip
    assert late.status_code == 422 and 'id="interviewed_on-error"' in late.text
    assert "in the future" in late.text
    missing = {
        **FORM_ANSWERS,
        "action": "submit",
        "interviewed_on": _today(coordinator.get(enter).text),
    }
    del missing["phq9_3"]
    unanswered = _post(coordinator, enter, missing)
    assert unanswered.status_code == 422 and 'id="phq9_3-error"' in unanswered.text
    stored = _instance(db, code)
    assert stored.completed_at is None and stored.answers == {} and stored.mode != "staff"
    assert not [a for a in _actions(db, code) if a[0].startswith("survey.s")]


def test_a_correction_keeps_the_original_and_needs_a_reason(api, signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    code = api.enroll(api.admin_token)
    api.complete_survey(code)
    correct = f"{S}/participants/{code}/surveys/baseline/correct"
    choose = coordinator.get(correct)
    assert choose.status_code == 200 and 'id="item" name="item">' in (choose.text)
    page = coordinator.get(f"{correct}?item=who5_1")
    assert "Stored answer" in page.text and "Reason for the correction" in page.text

    refused = _post(coordinator, f"{correct}?item=who5_1", {"item": "who5_1", "value": "9",
                                                            "reason": " "})  # fmt: skip
    assert refused.status_code == 422
    assert 'id="value-error"' in refused.text and 'id="reason-error"' in refused.text
    assert "Enter why the answer is corrected" in refused.text
    same = _post(coordinator, correct, {"item": "who5_1", "value": "3", "reason": "checking"})
    assert same.status_code == 422 and "already the stored answer" in same.text
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(AnswerCorrection)) == 0

    done = _post(
        coordinator, correct, {"item": "who5_1", "value": "5", "reason": "misheard on the phone"}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?done=corrected")
    assert "The answer is corrected." in coordinator.get(done.headers["location"]).text
    with db.session(write=False) as session:
        row = session.scalars(select(AnswerCorrection)).one()
        assert (row.item, row.old_value, row.new_value) == ("who5_1", 3, 5)
        assert row.reason == "misheard on the phone"
    assert _instance(db, code).answers["who5_1"] == 5
    corrected = [a for a in _actions(db, code) if a[0] == "survey.answer_corrected"]
    assert corrected[0][2]["who5_1"] == {"old": 3, "new": 5}
    assert corrected[0][3] == "misheard on the phone"
    assert "misheard on the phone" in coordinator.get(correct).text  # listed


def test_leaving_asks_the_kind_and_an_intervention_stop_keeps_the_surveys(api, signed_in, db):
    coordinator = signed_in("coordinator", "PHL")
    code = api.enroll(api.admin_token)
    page_path = f"{S}/participants/{code}"
    leave = f"{page_path}/withdraw"
    enrolled = coordinator.get(leave).text
    assert "Stopped the intervention" not in enrolled  # not randomized: nothing to stop
    assert "Withdrew from follow-up" in enrolled and "No longer interested" in enrolled
    assert api.randomize(api.admin_token, code).status_code == 200
    form = coordinator.get(leave).text
    assert "Stopped the intervention (still followed up)" in form
    assert "Surveys and reminders continue" in form  # the hint under the choice
    today = re.search(r'id="withdrawn_on" name="withdrawn_on" type="date" value="([\d-]+)"', form)
    assert today

    refused = _post(coordinator, leave, {"kind": "", "withdrawn_on": "2999-01-01",
                                         "category": "", "reason": ""})  # fmt: skip
    assert refused.status_code == 422 and "There is a problem" in refused.text
    for field in ("kind", "category", "reason"):
        assert f'id="{field}-error"' in refused.text, field
    future = _post(coordinator, leave, {"kind": "intervention", "withdrawn_on": "2999-01-01",
                                        "category": "burden", "reason": "Too tired"})  # fmt: skip
    assert future.status_code == 422 and 'id="withdrawn_on-error"' in future.text
    assert 'value="intervention" aria-describedby="kind-hint" checked' in future.text
    with db.session(write=False) as session:
        assert session.scalars(select(Participant)).one().withdrawal_kind is None

    stopped = _post(coordinator, leave, {"kind": "intervention", "withdrawn_on": today.group(1),
                                         "category": "burden", "reason": "Too tired"})  # fmt: skip
    assert stopped.status_code == 303
    assert "surveys continue" in coordinator.get(stopped.headers["location"]).text
    with db.session(write=False) as session:
        person = session.scalars(select(Participant)).one()
        assert (person.status, person.withdrawal_kind) == ("randomized", "intervention")
        assert person.withdrawal_category == "burden"
        cancelled = session.scalars(
            select(SurveyInstance.cancelled_at).where(SurveyInstance.participant_code == code)
        ).all()
    assert cancelled and not any(cancelled)
    after = coordinator.get(leave).text
    assert "Stopped the intervention (still followed up)</label>" not in after  # not again
    assert "Already recorded" in after

    left = _post(coordinator, leave, {"kind": "follow_up", "withdrawn_on": today.group(1),
                                      "category": "moved", "reason": "Moved away"})  # fmt: skip
    assert left.status_code == 303 and left.headers["location"].endswith("?done=withdrawn")
    with db.session(write=False) as session:
        person = session.scalars(select(Participant)).one()
        assert (person.status, person.withdrawal_kind) == ("withdrawn", "follow_up")
    kinds = [a[2]["withdrawal_kind"]["new"] for a in _actions(db, code)
             if a[0] == "participant.withdrawn"]  # fmt: skip
    assert kinds == ["intervention", "follow_up"]


def test_the_reissue_notice_says_whether_the_link_was_emailed(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    with_email = api.enroll(api.admin_token)
    without = api.enroll(api.admin_token, contact={"name": "No Mail", "email": None})
    for code, words in (
        (with_email, "The survey has a new link, emailed to the participant."),
        (without, "not emailed: the participant has no email address. Give them the link"),
    ):
        page = f"{S}/participants/{code}"
        done = coordinator.post(f"{page}/surveys/baseline/reissue", csrf_from=page)
        assert done.status_code == 303
        assert words in coordinator.get(done.headers["location"]).text


def test_a_blind_coordinator_cannot_open_a_survey_only_some_arms_have(api, db, signed_in):
    world = harness.create_world(api, db, "console-entry")
    harness.start_world(api, world, list(harness.ARMS))
    harness.enroll_and_randomize(api, db, world, api.user("coordinator", "PHL", study=world.slug))
    coordinator = signed_in("coordinator", "PHL", study=world.slug)
    base = f"/console/studies/{world.slug}/participants"
    assert harness.token_of(db, world, 0, "group_check") is not None  # list-serv has it
    assert harness.token_of(db, world, 1, "group_check") is None  # control does not
    seen: dict[str, set[str]] = {}
    for i, code in enumerate(world.codes):
        for what in ("enter", "correct"):
            refused = coordinator.get(f"{base}/{code}/surveys/group_check/{what}")
            assert refused.status_code == 404, (i, what)
            assert "your role is blind to arms" in refused.text
            seen.setdefault(what, set()).add(refused.text.replace(code, "CODE"))
        posted = _post(coordinator, f"{base}/{code}/surveys/group_check/enter",
                       {**harness.GROUP_ANSWERS, "action": "save"})  # fmt: skip
        assert posted.status_code == 404
        shared = coordinator.get(f"{base}/{code}/surveys/month_1/enter")
        assert shared.status_code == 200 and "only some arms answer are left out" in shared.text
        assert "gx_" not in shared.text
        seen.setdefault("month_1", set()).add(
            re.sub(r'value="[^"]{20,}"', "", shared.text.replace(code, "CODE"))
        )
    assert all(len(pages) == 1 for pages in seen.values()), {k: len(v) for k, v in seen.items()}
