"""The participant's record page for a coordinator the study keeps blind to arms: the same
page for participants in different arms after the same actions, though an unblinded
admin corrected an answer to the instrument only some arms have (its correction, with
its reason, is in the audit trail of those arms alone).

Each participant first saves an answer to the group's questions alone through their link
(refused where they have none), then submits. The admin makes the same corrections for
every participant: an item every arm answers
(shown to the coordinator, in words) and an item of the arm-limited instrument (refused
where the participant does not have it). The blind coordinator's record of each
participant (grid, answers, corrections, alerts, history) is then compared.
"""

from __future__ import annotations

from tests.blinding import harness
from tests.console.conftest import Browser, link_for
from tests.helpers import bearer

WHO5 = {f"who5_{i}": 2 for i in range(1, 6)}
PHQ9 = {f"phq9_{i}": 1 for i in range(1, 10)}
REASON = "read back to the participant, who corrected it"
GROUP_ITEM = "How helpful has the group been to you?"
SHARED_ITEM = "I have felt active and vigorous"
PAGES = ("", "?done=acknowledged", "?done=randomized")


def test_a_correction_of_an_arm_limited_answer_leaves_a_blind_coordinators_record_alike(
    api, db, client
):
    world = harness.create_world(
        api, db, "blind-record", arm_visible_to=("admin", "unblinded_statistician")
    )
    harness.start_world(api, world, list(harness.ARMS))
    email = "coordinator-record@example.org"
    token = api.user("coordinator", "PHL", study=world.slug, email=email)
    coordinator = Browser(client, email)
    assert coordinator.open_link(link_for(db, email)).status_code == 303
    harness.enroll_and_randomize(api, db, world, token)

    admin = bearer(api.admin_token)
    corrected = []
    for index, code in enumerate(world.codes):
        own = harness.token_of(db, world, index, "month_1")
        has_group = "group_experience" in harness._instruments(db, world.slug, code, "month_1")
        answers = WHO5 | PHQ9 | (harness.GROUP_ANSWERS if has_group else {})
        # First the group's question alone, saved through the link (the control cannot).
        saved = api.client.put(f"/api/v1/surveys/{own}/answers", json={"gx_frequency": 3})
        assert saved.status_code == (200 if has_group else 422), saved.text
        done = api.client.post(f"/api/v1/surveys/{own}/submit", json={"answers": answers})
        assert done.status_code == 200, done.text
        base = f"/api/v1/studies/{world.slug}/participants/{code}/surveys/month_1/corrections"
        for item, value in (("gx_helpful", 1), ("who5_3", 5)):
            made = api.client.post(
                base, json={"item": item, "value": value, "reason": REASON}, headers=admin
            )
            corrected.append((code, item, made.status_code))
    # Where the participant answers the group's questions, the admin corrected one.
    assert [s for _, item, s in corrected if item == "gx_helpful"] == [201, 422, 201]
    assert {s for _, item, s in corrected if item == "who5_3"} == {201}

    pages: dict[str, list[str]] = {}
    for code in world.codes:
        for state in PAGES:
            page = coordinator.get(f"/console/studies/{world.slug}/participants/{code}{state}")
            assert page.status_code == 200, page.text
            pages.setdefault(state, []).append(
                harness.normalize(page.text, slug=world.slug, code=code)
            )
    for state, shown in pages.items():
        listserv, control, board = shown
        assert listserv == control == board, (state, harness._diff(listserv, control))
    record = pages[""][0]
    # The shared item's correction is shown in words, with its reason; the group's not.
    assert f"“{SHARED_ITEM}”: Less than half of the time → All of the time" in record
    assert REASON in record and "Survey answer corrected" in record
    assert GROUP_ITEM not in record and "Your online group" not in record
    assert "Thoughts of self-harm" in record  # the baseline's alert, with its answer
    assert "Several days" in record

    # An admin, whom this study shows arms, reads the group's correction on the page.
    admin_email = "admin-record@example.org"
    api.user("admin", email=admin_email)
    seeing = Browser(client, admin_email)
    assert seeing.open_link(link_for(db, admin_email)).status_code == 303
    page = seeing.get(f"/console/studies/{world.slug}/participants/{world.codes[0]}").text
    assert f"“{GROUP_ITEM}”: Very helpful → Not at all helpful" in page
    assert "Your online group" in page and page.count(REASON) == 4  # answers and history
