"""Links a blind role may not see: withheld from staff, sent to the participant.

In a study that keeps coordinators blind, a survey whose instruments differ by arm has
no link for them (its pages would show the arm), and reissuing or resending a survey
that only some arms have answers alike for every arm: the email goes to the participant
where they have the survey, and nothing happens where they do not.
"""

from __future__ import annotations

import re

from app.i18n import catalogs
from app.i18n.catalogs import gettext
from app.scheduler.runner import run_pass
from tests.blinding import harness
from tests.helpers import bearer
from tests.smtp import body

LINK = re.compile(r"http://testserver(/s/[\w-]+)")
LANG = re.compile(r'<html lang="([a-z]{2})"')
LISTSERV, CONTROL = 0, 1


def _post(api, token: str, world, index: int, timepoint: str, what: str):
    code = world.codes[index]
    return api.client.post(
        f"/api/v1/studies/{world.slug}/participants/{code}/surveys/{timepoint}/{what}",
        headers=bearer(token),
    )


def test_a_withheld_link_is_replaced_and_emailed_to_the_participant(api, db, client, mailer, inbox):
    world = harness.create_world(api, db, "blind-mail")
    harness.start_world(api, world, list(harness.ARMS))
    staff = harness.blind_staff(api, db, client, [world], client)
    coordinator = staff.tokens["coordinator"]
    harness.enroll_and_randomize(api, db, world, coordinator, emails=True)
    run_pass(mailer)
    to = harness.address(world, LISTSERV)
    before = len(inbox.to(to))
    old = harness.token_of(db, world, LISTSERV, "month_1")

    shown = api.client.get(
        f"/api/v1/studies/{world.slug}/participants/{world.codes[LISTSERV]}",
        headers=bearer(coordinator),
    ).json()
    assert [s["link"] for s in shown["surveys"] if s["timepoint"] == "month_1"] == [None]
    statuses = {s["timepoint"]: s["status"] for s in shown["surveys"]}
    assert statuses == {
        "baseline": "completed",
        "month_1": "open",
        "recall": "missed",
        "month_12": "scheduled",
    }

    reissued = _post(api, coordinator, world, LISTSERV, "month_1", "reissue")
    # Every arm has this survey: whether it was emailed tells no arm.
    assert (reissued.status_code, reissued.json()) == (200, {"link": None, "emailed": True})
    assert api.client.get(f"/s/{old}").status_code == 410
    run_pass(mailer)
    [letter] = inbox.to(to)[before:]
    found = LINK.search(body(letter))
    assert found, body(letter)
    page = api.client.get(found.group(1))  # the study's intro page, then the first part
    # In the language the participant chose (the harness picks the study's last).
    language = LANG.search(page.text)
    assert page.status_code == 200 and language, page.text
    with catalogs.speaking(language.group(1)):
        start, part = gettext("Start the survey"), gettext("Part %(n)s of %(total)s")
    assert language.group(1) != "en" and start != "Start the survey"  # translated indeed
    assert start in page.text
    first = api.client.get(found.group(1), params={"part": "1"}).text
    assert part % {"n": 1, "total": 3} in first


def test_a_survey_only_some_arms_have_is_answered_alike_and_mailed_only_where_it_exists(
    api, db, client, mailer, inbox
):
    world = harness.create_world(api, db, "blind-alike")
    harness.start_world(api, world, list(harness.ARMS))
    staff = harness.blind_staff(api, db, client, [world], client)
    coordinator = staff.tokens["coordinator"]
    harness.enroll_and_randomize(api, db, world, coordinator, emails=True)
    run_pass(mailer)
    sent = {i: len(inbox.to(harness.address(world, i))) for i in (LISTSERV, CONTROL)}
    assert harness.token_of(db, world, CONTROL, "group_check") is None
    old = harness.token_of(db, world, LISTSERV, "group_check")

    for index in (LISTSERV, CONTROL):
        reissued = _post(api, coordinator, world, index, "group_check", "reissue")
        assert (reissued.status_code, reissued.json()) == (200, {"link": None, "emailed": None})
        resent = _post(api, coordinator, world, index, "group_check", "resend")
        assert resent.status_code == 202
        assert resent.json() == {"timepoint": "group_check", "queued": None}
    run_pass(mailer)

    assert api.client.get(f"/s/{old}").status_code == 410
    # The new link's email; the resend found it queued and added none (API.md).
    assert len(inbox.to(harness.address(world, LISTSERV))) == sent[LISTSERV] + 1
    assert len(inbox.to(harness.address(world, CONTROL))) == sent[CONTROL]
    assert harness.token_of(db, world, CONTROL, "group_check") is None


def test_a_coordinator_the_study_shows_arms_to_gets_links_and_a_404_for_no_survey(api, db):
    world = harness.create_world(api, db, "open-links", arm_visible_to=("coordinator",))
    harness.start_world(api, world, list(harness.ARMS))
    coordinator = api.user("coordinator", "PHL", study=world.slug)
    harness.enroll_and_randomize(api, db, world, coordinator)
    reissued = _post(api, coordinator, world, LISTSERV, "month_1", "reissue")
    assert reissued.status_code == 200 and reissued.json()["link"].startswith("http://")
    assert _post(api, coordinator, world, LISTSERV, "group_check", "reissue").status_code == 200
    assert _post(api, coordinator, world, CONTROL, "group_check", "reissue").status_code == 404
    resent = _post(api, coordinator, world, LISTSERV, "group_check", "resend")
    assert (resent.status_code, resent.json()["queued"]) == (202, True)
