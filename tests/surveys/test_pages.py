"""The survey pages (`/s/{token}`) over HTTP: forms, errors, saving, submitting, and
the page of every link that cannot be answered. The browser tests (`test_browser.py`)
drive the same pages in Chromium."""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import select

from app.surveys.models import SurveyInstance
from app.surveys.tokens import token_hash
from tests.helpers import BASELINE_ANSWERS, STUDY, bearer
from tests.surveys.test_api import PARTICIPANTS, _shift_window

WHO5 = {f"who5_{i}": "3" for i in range(1, 6)}
PHQ9 = {f"phq9_{i}": "1" for i in range(1, 10)} | {"phq9_9": "0"}


def _open(api) -> tuple[str, str, str]:
    """A new participant's baseline: (code, token, the first page's csrf token)."""
    coordinator = api.user("coordinator", "PHL")
    code = api.enroll(coordinator)
    token = api.survey_token(code)
    first = api.client.get(f"/s/{token}?part=1")  # past the demo's intro page
    assert first.status_code == 200, first.text
    return code, token, _csrf(first.text)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no csrf token on the page"
    return found.group(1)


def _post(api, token: str, csrf: str, part: int, action: str, answers: dict[str, Any]):
    form = {"csrf_token": csrf, "part": str(part), "action": action, **answers}
    return api.client.post(f"/s/{token}", data=form, follow_redirects=False)


def _saved(api, token: str) -> dict[str, Any]:
    """The answers kept for the link (read in the database: once the survey is sent, its
    link shows them no more)."""
    with api.client.app.state.db.session(write=False) as session:
        instance = session.scalars(
            select(SurveyInstance).where(SurveyInstance.token_hash == token_hash(token))
        ).one()
        return dict(instance.answers)


def _checked(html: str) -> set[tuple[str, str]]:
    """The (item, value) of every checked radio button or box on the page."""
    return set(re.findall(r'name="(\w+)" value="([^"]*)" checked', html))


def test_the_first_page_is_one_instrument_with_every_question_labelled(api):
    _code, token, _ = _open(api)
    shown = api.client.get(f"/s/{token}?part=1")
    html = shown.text
    assert shown.headers["content-type"].startswith("text/html")
    assert "<title>Part 1 of 2 — WHO-5 Well-Being Index</title>" in html
    assert html.count("<h1") == 1 and 'lang="en"' in html and 'href="#main-content"' in html
    assert html.count("<fieldset") == 5 and html.count("<legend") == 5
    for item in WHO5:
        ids = re.findall(rf'id="({item}-\d+)" name="{item}"', html)
        assert len(ids) == 6 and all(f'<label class="choice-label" for="{i}">' in html for i in ids)
    assert "phq9_1" not in html  # the second instrument is on the second page
    assert 'value="next"' in html and 'value="save"' in html and 'value="submit"' not in html


def test_every_page_is_sent_with_the_security_headers_and_never_cached(api):
    _code, token, csrf = _open(api)
    unknown = secrets.token_urlsafe(32)
    for response in (
        api.client.get(f"/s/{token}"),
        api.client.get(f"/s/{unknown}"),
        _post(api, token, csrf, 1, "next", {}),
        _post(api, token, csrf, 1, "save", {"who5_1": "4"}),
    ):
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"


def test_a_missing_answer_is_422_beside_its_question_and_summarized_with_answers_kept(api):
    _code, token, csrf = _open(api)
    given = WHO5 | {"who5_3": ""}
    refused = _post(api, token, csrf, 1, "next", given)
    assert refused.status_code == 422
    html = refused.text
    assert "<title>Error: Part 1 of 2" in html and "There is a problem" in html
    message = "Choose an answer for “I have felt active and vigorous”"
    assert f'<a href="#who5_3-1">{message}</a>' in html  # the summary links to the input
    assert f'id="who5_3-error"><span class="visually-hidden">Error:</span> {message}' in html
    assert 'aria-describedby="instructions who5_3-error"' in html
    assert _checked(html) == {(k, v) for k, v in given.items() if v}
    assert _saved(api, token) == {}  # nothing kept


def test_a_value_that_is_not_an_option_is_refused_and_nothing_is_kept(api):
    _code, token, csrf = _open(api)
    for bad in ("9", "three", "3\x00"):
        refused = _post(api, token, csrf, 1, "save", {"who5_1": bad, "who5_2": "4"})
        assert refused.status_code == 422, bad
        assert "who5_1-error" in refused.text and "who5_2-error" not in refused.text
        assert ("who5_2", "4") in _checked(refused.text)
    assert _saved(api, token) == {}


def test_save_keeps_the_answers_says_until_when_and_reopening_shows_them(api):
    _code, token, csrf = _open(api)
    saved = _post(api, token, csrf, 1, "save", {"who5_1": "5", "who5_2": "0"})
    assert saved.status_code == 200
    assert "Your answers are saved" in saved.text and "open the same link" in saved.text
    closes_on = api.client.get(f"/api/v1/surveys/{token}").json()
    assert _saved(api, token) == {"who5_1": 5, "who5_2": 0}
    assert closes_on["status"] == "open"
    reopened = api.client.get(f"/s/{token}")
    assert {("who5_1", "5"), ("who5_2", "0")} <= _checked(reopened.text)
    # A question left empty on a later save forgets its earlier answer.
    _post(api, token, csrf, 1, "save", {"who5_1": "5"})
    assert _saved(api, token) == {"who5_1": 5}


def test_continue_back_and_submit_go_through_the_parts_to_the_thank_you_page(api):
    code, token, csrf = _open(api)
    onward = _post(api, token, csrf, 1, "next", WHO5)
    assert onward.status_code == 303 and onward.headers["location"] == f"/s/{token}?part=2"
    second = api.client.get(onward.headers["location"])
    assert "<title>Part 2 of 2 — Patient Health Questionnaire (PHQ-9)</title>" in second.text
    assert 'value="submit"' in second.text and "Before you send your answers" in second.text
    back = _post(api, token, csrf, 2, "back", {"phq9_1": "2"})
    assert back.headers["location"] == f"/s/{token}?part=1"
    assert _saved(api, token)["phq9_1"] == 2
    assert _checked(api.client.get(f"/s/{token}?part=2").text) == {("phq9_1", "2")}
    done = _post(api, token, csrf, 2, "submit", PHQ9)
    assert done.status_code == 200, done.text
    assert "Thank you — your answers have been sent" in done.text
    assert "If you need help now" not in done.text  # no alert: no crisis text
    assert "988" not in done.text or 'href="tel:988"' in done.text
    assert api.survey_status(code) == "completed"
    assert _saved(api, token) == BASELINE_ANSWERS
    again = api.client.get(f"/s/{token}")
    assert again.status_code == 409 and "You have already sent your answers" in again.text
    late = _post(api, token, csrf, 2, "submit", PHQ9)
    assert late.status_code == 409 and "already sent" in late.text


def test_an_answer_raising_a_safety_alert_shows_the_crisis_text_with_phone_links(api):
    code, token, csrf = _open(api)
    _post(api, token, csrf, 1, "next", WHO5)
    done = _post(api, token, csrf, 2, "submit", PHQ9 | {"phq9_9": "2"})
    assert done.status_code == 200
    assert "If you need help now" in done.text and 'href="tel:988"' in done.text
    admin = bearer(api.admin_token)
    alerts = api.client.get(f"/api/v1/studies/{STUDY}/alerts", headers=admin).json()["items"]
    assert [a["participant"] for a in alerts] == [code]


def test_submitting_with_an_earlier_part_incomplete_shows_that_part(api):
    _code, token, csrf = _open(api)
    refused = _post(api, token, csrf, 2, "submit", PHQ9)
    assert refused.status_code == 422
    assert "<title>Error: Part 1 of 2" in refused.text and "#who5_1-1" in refused.text
    assert _saved(api, token) == {k: int(v) for k, v in PHQ9.items()}  # this page is kept


def test_a_form_without_the_pages_csrf_token_changes_nothing(api):
    _code, token, _csrf_token = _open(api)
    for csrf in ("", "0" * 64, _csrf_token[:-1] + ("0" if _csrf_token[-1] != "0" else "1")):
        refused = _post(api, token, csrf, 1, "save", {"who5_1": "4"})
        assert refused.status_code == 403 and "This page has expired" in refused.text
    plain = api.client.post(f"/s/{token}", json={"who5_1": 4})
    assert plain.status_code == 403
    assert _saved(api, token) == {}


def test_the_form_token_of_one_link_does_not_work_on_another(api):
    _code, token, csrf = _open(api)
    _other, other_token, _ = _open(api)
    assert _post(api, other_token, csrf, 1, "save", {"who5_1": "4"}).status_code == 403
    assert _saved(api, other_token) == {}
    assert _post(api, token, csrf, 1, "save", {"who5_1": "4"}).status_code == 200


def test_links_that_cannot_be_answered_get_a_friendly_page_with_the_apis_status(api, db):
    coordinator = api.user("coordinator", "PHL")
    later, closed, withdrawn, reissued = (api.enroll(coordinator) for _ in range(4))
    tokens = {code: api.survey_token(code) for code in (later, closed, withdrawn, reissued)}
    _shift_window(db, later, "baseline", days=5)
    _shift_window(db, closed, "baseline", days=-30)
    api.client.post(
        f"{PARTICIPANTS}/{withdrawn}/withdraw",
        json={"reason": "moved"},
        headers=bearer(coordinator),
    )
    api.client.post(
        f"{PARTICIPANTS}/{reissued}/surveys/baseline/reissue", headers=bearer(coordinator)
    )
    expected = {
        tokens[later]: (409, "This survey is not open yet"),
        tokens[closed]: (410, "This survey has closed"),
        tokens[withdrawn]: (410, "You do not need to fill in this survey"),
        tokens[reissued]: (410, "This link is no longer used"),
        secrets.token_urlsafe(32): (404, "We cannot find this survey"),
        "short": (404, "We cannot find this survey"),
        "x" * 500: (404, "We cannot find this survey"),
    }
    for token, (status, heading) in expected.items():
        shown = api.client.get(f"/s/{token}")
        assert (shown.status_code, heading) == (status, heading)
        assert f"<h1>{heading}</h1>" in shown.text and "<form" not in shown.text
        assert shown.headers["content-type"].startswith("text/html")
        posted = api.client.post(f"/s/{token}", data={"action": "save"})
        assert posted.status_code == status and heading in posted.text


def test_an_address_guessing_links_is_slowed_down_with_a_page_saying_so(api):
    _code, token, _ = _open(api)
    for _ in range(20):
        assert api.client.get(f"/s/{secrets.token_urlsafe(32)}").status_code == 404
    # A real link still opens (participants may share the guesser's address); the next
    # unknown one waits a minute.
    assert api.client.get(f"/s/{token}").status_code == 200
    slowed = api.client.get(f"/s/{secrets.token_urlsafe(32)}")
    assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) >= 1
    assert "Please wait a minute" in slowed.text


def test_a_page_too_large_to_take_is_answered_with_a_page(api):
    token = api.survey_token(api.enroll(api.user("coordinator", "PHL")))
    response = api.client.post(f"/s/{token}", data={"who5_1": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "Your answers are too long to send" in response.text
    api_answer = api.client.put(
        f"/api/v1/surveys/{token}/answers",
        content=b'{"who5_1": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert api_answer.status_code == 413
    assert api_answer.headers["content-type"] == "application/problem+json"
