"""Safety triage first, and fewer wrong clicks (issue 14 items 3 and 4): open alerts on
top with how long they have been open, a badge in the navigation, randomizing asked
first with the stratum, the arm named after, a warning without email, a new link only
for open surveys, search and readiness filters, and words instead of codes."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from tests.console.test_pages import ELIGIBLE, S, _code, _enroll
from tests.helpers import BASELINE_ANSWERS, study_today

BADGE = re.compile(r'class="nav-alerts" href="([^"]+)">Alerts <span class="badge">(\d+)</span>')


def test_open_alerts_come_first_with_how_long_they_are_open_and_a_badge(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    assert BADGE.search(coordinator.get(f"{S}/participants").text) is None  # none yet
    code = _code(_enroll(coordinator)[0])
    api.complete_survey(code, answers={**BASELINE_ANSWERS, "phq9_9": 2})

    dashboard = coordinator.get(S).text
    main = dashboard.split('id="main-content"', 1)[1]
    assert main.index("Open safety alerts (1)") < main.index("Recruitment")  # on top
    row = main.split('id="alerts-caption"', 1)[1].split("</tr>", 2)[1]
    assert code in row and "open less than a minute" in row and "<time datetime=" in row
    worklist = coordinator.get(f"{S}/worklist?status=&site=&timepoint=&sort=closes_on").text
    assert worklist.index("Open safety alerts (1)") < worklist.index(">Surveys<")
    badge = BADGE.search(worklist)
    assert badge and badge.groups() == (f"{S}/worklist", "1")
    # Another site's coordinator sees neither the alert nor a badge.
    pit = signed_in("coordinator", "PIT")
    assert BADGE.search(pit.get(S).text) is None and code not in pit.get(S).text
    # A statistician sees no participant: no alerts, no badge.
    assert BADGE.search(signed_in("statistician").get(S).text) is None


def test_randomize_asks_first_with_the_stratum_and_names_the_arm_after(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    api.complete_survey(code)
    record = coordinator.get(f"{S}/participants/{code}").text
    assert f'<form method="get" action="{S}/participants/{code}/randomize">' in record
    assert "Diagnosis</dt><dd>Bipolar disorder</dd>" in record  # the definition's label
    asked = coordinator.get(f"{S}/participants/{code}/randomize")
    assert asked.status_code == 200
    assert "<dd>Site PHL, diagnosis: Bipolar disorder</dd>" in asked.text
    assert "cannot be undone" in asked.text
    assert "randomized" not in record.split("<dl", 1)[1].split("</dl>", 1)[0]  # nothing yet

    done = coordinator.post(f"{S}/participants/{code}/randomize", csrf_from=asked.url.path)
    assert done.status_code == 303
    after = coordinator.get(done.headers["location"]).text
    assert "The participant is randomized." in after
    named = re.search(r'role="status"><p>Allocated to ([^<]+)\.</p>', after)
    assert named and named.group(1) in after.split("<dt>Arm</dt>", 1)[1]
    # A statistician (blind) may not randomize: no confirmation page either.
    statistician = signed_in("statistician")
    assert statistician.get(f"{S}/participants/{code}/randomize").status_code == 403


def test_enrolling_without_email_warns_beside_the_field_and_on_the_record(signed_in):
    coordinator = signed_in("coordinator", "PHL")
    form = coordinator.get(f"{S}/enroll").text
    assert 'id="contact-email-warning"' in form and "invitations will fail" in form
    no_email = {k: v for k, v in ELIGIBLE.items() if k != "contact-email"}
    done, _ = _enroll(coordinator, no_email)
    page = coordinator.get(done.headers["location"]).text
    assert "The participant is enrolled." in page  # still allowed
    assert "No email address: survey invitations and reminders cannot be sent" in page
    with_email = coordinator.get(_enroll(coordinator)[0].headers["location"]).text
    assert "No email address" not in with_email


def test_a_new_link_is_offered_only_for_an_open_survey(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])
    page = coordinator.get(f"{S}/participants/{code}").text
    offered = re.findall(r"/surveys/(\w+)/reissue", page)
    assert offered == ["baseline"]  # open; the later ones are not open yet
    api.complete_survey(code)
    assert "/reissue" not in coordinator.get(f"{S}/participants/{code}").text


def test_the_participant_list_finds_by_code_email_or_name_and_filters_readiness(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    ann = _code(_enroll(coordinator)[0])
    bo = _code(
        _enroll(
            coordinator, {**ELIGIBLE, "contact-name": "Bo Ström", "contact-email": "bo@example.org"}
        )[0]
    )
    pit = signed_in("coordinator", "PIT")
    theirs = _code(
        _enroll(
            pit,
            {
                **ELIGIBLE,
                "site": "PIT",
                "contact-name": "Bo Other",
                "contact-email": "other@example.org",
            },
        )[0]
    )
    api.complete_survey(ann)

    def listed(query: str, browser=coordinator) -> list[str]:  # type: ignore[no-untyped-def]
        page = browser.get(f"{S}/participants?{query}")
        assert page.status_code == 200, page.text
        return re.findall(r'participants/(PS-[\w-]+)">', page.text)

    assert listed(f"q={bo.lower()}") == [bo]  # a code, any case
    assert listed("q=BO@example.org") == [bo]  # an email, exactly (its keyed hash)
    assert listed("q=bo@example") == []  # not part of an email: nothing is decrypted
    assert listed("q=str%C3%B6m") == [bo]  # part of a name, any case
    assert listed("q=Bo") == [bo]  # only the caller's sites
    assert listed("q=Bo", pit) == [theirs]
    assert listed("ready=ready") == [ann]
    assert listed("ready=awaiting_baseline") == [bo]
    assert listed("status=&ready=&site=&q=") == [ann, bo]  # the filters' "Any"
    assert coordinator.get(f"{S}/participants?q=" + "x" * 201).status_code == 422
    assert coordinator.get(f"{S}/participants?ready=soon").status_code == 422
    assert coordinator.get(f"{S}/participants?site=PIT").status_code == 404


def test_words_instead_of_codes_and_a_coordinator_of_one_study_lands_on_it(api, signed_in):
    coordinator = signed_in("coordinator", "PHL")
    not_eligible = {**ELIGIBLE, "screening-internet_access": "no"}
    page = coordinator.get(_enroll(coordinator, not_eligible)[0].headers["location"]).text
    assert "Not eligible because</dt><dd>Has regular internet access: no</dd>" in page
    history = page.split("History", 1)[1]
    assert "Screened" in history
    home = coordinator.get("/console")
    assert home.status_code == 200 and "<h1>Dashboard</h1>" in home.text
    admin = signed_in("admin")
    assert "<h1>Dashboard</h1>" not in admin.get("/console").text  # admins get their links


def test_the_icon_is_served_and_named_by_every_page(client, signed_in):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
    assert client.get("/static/favicon.svg").status_code == 200
    page = signed_in("coordinator", "PHL").get(S).text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page


def test_the_worklist_shows_what_needs_action_first_and_all_in_one_click(signed_in):
    coordinator = signed_in("coordinator", "PHL")
    code = _code(_enroll(coordinator)[0])  # its baseline is open, not overdue
    bare = coordinator.get(f"{S}/worklist").text
    assert "Showing the surveys that need action" in bare and "No survey needs action" in bare
    assert f">{code}</a>" not in bare
    every = re.search(r'href="([^"]+)">Show all surveys</a>', bare)
    assert every
    listed = coordinator.get(every.group(1).replace("&amp;", "&")).text
    assert f">{code}</a>" in listed and "Show only what needs action" in listed


def test_missed_recently_counts_back_from_the_studys_today(signed_in, db):
    """ "Missed in the last 14 days" counts study dates: from midnight UTC until New
    York's, the UTC date is already tomorrow there, and a survey that closed 14 study
    days ago was left out of what needs action."""
    coordinator = signed_in("coordinator", "PHL")
    recent, old = (_code(_enroll(coordinator)[0]) for _ in range(2))
    for code, closed in ((recent, 14), (old, 15)):  # days before the study's today
        closes = study_today() - timedelta(days=closed)
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE survey_instances SET opens_on = :o, closes_on = :c "
                    "WHERE participant_code = :p AND timepoint = 'baseline'"
                ),
                {"o": closes - timedelta(days=7), "c": closes, "p": code},
            )
    bare = coordinator.get(f"{S}/worklist").text
    assert f">{recent}</a>" in bare and f">{old}</a>" not in bare
