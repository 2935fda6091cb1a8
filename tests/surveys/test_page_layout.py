"""The survey pages as the instrument's authors wrote them: the intro page, the study's
and the instruments' participant-facing names, the validated stems as every question's
hint, section headings, "Part 2 of 2" with a progress bar, the crisis text beside the
questions an alert rule watches, and the text-size choice (issue 14, item 1)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from app.demo import demo_definition
from app.studies.definition import Instrument, StudyDefinition
from app.surveys import layout
from app.web.pages import environment
from tests.surveys.test_pages import PHQ9, WHO5, _open, _post

PHQ9_STEM = (
    "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
)
WHO5_STEM = (
    "Please indicate for each of the five statements which is closest to how you have been "
    "feeling over the last two weeks."
)
SHOWN_NAME = "Online Peer Support Study"


def _fieldsets(html: str) -> dict[str, str]:
    """Each question's aria-describedby, by the name of its inputs."""
    found = re.findall(
        r'<fieldset class="fieldset" aria-describedby="([^"]*)">.*?name="(\w+)"', html, re.S
    )
    return {name: described for described, name in found}


def test_the_intro_page_comes_first_says_how_long_and_who_reads_self_harm_answers(api):
    _code, token, csrf = _open(api)
    intro = api.client.get(f"/s/{token}")
    html = intro.text
    assert intro.status_code == 200
    assert f"<title>Before you start — {SHOWN_NAME}</title>" in html
    assert html.count("<h1") == 1 and "<h1>Baseline survey</h1>" in html
    assert "It takes about 10 minutes, in 2 parts." in html
    assert "The study team reads these answers" in html and "may call you" in html
    assert 'href="tel:988"' in html  # the crisis text, before any question
    assert 'href="?part=1">Start the survey</a>' in html and "<form" not in html
    assert intro.headers["referrer-policy"] == "no-referrer"
    # Once something is saved, the link opens where the person left off.
    _post(api, token, csrf, 1, "next", WHO5)
    assert "<title>Part 2 of 2 —" in api.client.get(f"/s/{token}").text


def test_no_page_a_participant_sees_names_the_illness(api):
    _code, token, csrf = _open(api)
    pages = [
        api.client.get(f"/s/{token}").text,
        api.client.get(f"/s/{token}?part=1").text,
        _post(api, token, csrf, 1, "save", {"who5_1": "2"}).text,
        _post(api, token, csrf, 1, "next", WHO5 | {"who5_2": ""}).text,
    ]
    _post(api, token, csrf, 1, "next", WHO5)
    pages.append(_post(api, token, csrf, 2, "submit", PHQ9).text)
    pages.append(api.client.get(f"/s/{token}").text)  # already sent
    for html in pages:
        assert "mental illness" not in html.lower()
        assert f'<span class="header-title">{SHOWN_NAME}</span>' in html
    survey = api.client.get(f"/api/v1/surveys/{_open(api)[1]}").json()
    assert survey["study"] == survey["participant_title"] == SHOWN_NAME


def test_a_part_shows_its_place_with_text_and_a_bar_hidden_from_screen_readers(api):
    _code, token, csrf = _open(api)
    first = api.client.get(f"/s/{token}?part=1").text
    assert "<strong>Part 1 of 2</strong>" in first
    assert '<progress class="progress" max="2" value="1" aria-hidden="true">' in first
    _post(api, token, csrf, 1, "next", WHO5)
    second = api.client.get(f"/s/{token}?part=2").text
    assert "<title>Part 2 of 2 — Patient Health Questionnaire (PHQ-9)</title>" in second
    assert '<progress class="progress" max="2" value="2" aria-hidden="true">' in second


def test_the_instruments_stem_is_every_questions_hint(api):
    _code, token, _ = _open(api)
    for part, stem, items in ((1, WHO5_STEM, WHO5), (2, PHQ9_STEM, PHQ9)):
        html = api.client.get(f"/s/{token}?part={part}").text
        assert f'<p class="lead instructions" id="instructions">{stem}</p>' in html
        assert _fieldsets(html) == dict.fromkeys(items, "instructions")
        assert "Choose the answer that fits you best" not in html


def test_the_optional_note_shows_only_when_a_question_on_the_page_is_optional(api):
    _code, token, _ = _open(api)
    for part in (1, 2):
        assert "(optional)" not in api.client.get(f"/s/{token}?part={part}").text
    group = demo_definition()["instruments"][2]
    html = _render_part(Instrument.model_validate(group))
    assert "Questions marked “(optional)” can be left out." in html


def test_the_crisis_text_sits_beside_the_self_harm_question_only(api):
    _code, token, csrf = _open(api)
    assert "-crisis" not in api.client.get(f"/s/{token}?part=1").text
    html = api.client.get(f"/s/{token}?part=2").text
    assert re.findall(r'id="(\w+)-crisis"', html) == ["phq9_9"]
    after_item_9 = html[html.index('name="phq9_9"') :]
    assert after_item_9.index('id="phq9_9-crisis"') < after_item_9.index("</form>")
    assert 'href="tel:988"' in after_item_9[: after_item_9.index("</form>")]
    # Also after a refused submit: the page with errors keeps it.
    refused = _post(api, token, csrf, 2, "submit", PHQ9 | {"phq9_9": ""})
    assert refused.status_code == 422 and 'id="phq9_9-crisis"' in refused.text


def test_the_text_size_link_is_remembered_in_a_cookie_for_survey_pages(api):
    _code, token, _ = _open(api)
    chosen = api.client.get(f"/s/{token}?part=2&text=large", follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == f"/s/{token}?part=2"
    cookie = chosen.headers["set-cookie"]
    assert cookie.startswith("text_size=large;") and "Path=/s/" in cookie
    assert "SameSite=strict" in cookie
    large = api.client.get(f"/s/{token}?part=2").text
    assert '<html lang="en" dir="ltr" class="text-large">' in large
    assert 'data-text-size="large" aria-current="true"' in large
    assert '<script src="/static/survey.js" defer></script>' in large
    api.client.get(f"/s/{token}?text=standard")
    assert "text-large" not in api.client.get(f"/s/{token}?part=1").text
    for odd in ("huge", "x" * 3000, "large\x00"):
        ignored = api.client.get(f"/s/{token}", params={"text": odd}, follow_redirects=False)
        assert ignored.status_code == 303 and "set-cookie" not in ignored.headers
    api.client.cookies.set("text_size", "<script>", path="/s/")
    assert "<script>" not in api.client.get(f"/s/{token}?part=1").text.split("</head>")[1]


def test_the_json_survey_carries_instructions_titles_and_where_the_crisis_text_goes(api):
    _code, token, _ = _open(api)
    survey = api.client.get(f"/api/v1/surveys/{token}").json()
    assert survey["intro_minutes"] == 10 and "988" in survey["crisis_text"]
    who5, phq9 = survey["instruments"]
    assert (who5["instructions"], phq9["instructions"]) == (WHO5_STEM, PHQ9_STEM)
    assert phq9["participant_title"] == "Patient Health Questionnaire (PHQ-9)"
    assert [i["code"] for i in phq9["items"] if i["crisis_beside"]] == ["phq9_9"]
    assert {i["section"] for i in phq9["items"]} == {None}


def test_section_headings_and_question_instructions_are_shown_and_linked():
    definition = demo_definition()
    group = definition["instruments"][2]
    group["items"][3] |= {
        "section": "In your own words",
        "instructions": "Write as much as you like",
    }
    html = _render_part(Instrument.model_validate(group))
    heading = '<h2 class="heading-medium section-heading">In your own words</h2>'
    assert html.index(heading) < html.index('id="gx_comments"')
    assert '<div class="hint" id="gx_comments-hint"><p>Write as much as you like</p></div>' in html
    assert 'aria-describedby="gx_comments-hint"' in html


def test_crisis_text_goes_after_named_items_else_after_the_last_of_a_watched_score():
    definition = StudyDefinition.model_validate(demo_definition())
    watched = layout.watched_items(definition)
    phq9 = definition.instrument("phq9")
    assert watched.direct == {"phq9_9"} and len(watched.through_scores) == 9
    assert layout.crisis_after(phq9.items, watched) == {"phq9_9"}
    only_score = layout.Watched(direct=frozenset(), through_scores=watched.through_scores)
    assert layout.crisis_after(phq9.items[:4], only_score) == {"phq9_4"}
    assert layout.crisis_after(definition.instrument("who5").items, watched) == frozenset()


def _render_part(instrument: Instrument) -> str:
    """The part page of one instrument, rendered as the survey route renders it."""
    return environment.get_template("survey/part.html").render(
        instrument=instrument,
        part=1,
        parts=1,
        csrf_token="0",
        errors=[],
        messages={},
        shown={item.code: [] for item in instrument.items},
        hints={i.code: h for i in instrument.items if (h := layout.hints(i))},
        any_optional=layout.any_optional(instrument.items),
        crisis_after=frozenset(),
        crisis_text=None,
        text_size="standard",
    )


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("instrument", "instructions", "x" * 2001),
        ("instrument", "participant_title", ""),
        ("item", "section", "x" * 2001),
        ("item", "instructions", ["a list"]),
        ("study", "intro", {"minutes": 0}),
        ("study", "intro", {"minutes": 241}),
        ("study", "intro", {"minutes": 5, "extra": 1}),
        ("study", "intro", {"enabled": True}),
        ("study", "intro", {"minutes": 5, "text": "x" * 2001}),
    ],
)
def test_instructions_sections_titles_and_intro_are_bounded(where, field, value):
    definition = demo_definition()
    target = {
        "study": definition,
        "instrument": definition["instruments"][0],
        "item": definition["instruments"][0]["items"][0],
    }[where]
    target[field] = value
    with pytest.raises(ValidationError) as refused:
        StudyDefinition.model_validate(definition)
    assert field in str(refused.value)
