"""Blinding as one pure policy: who may see arms, the design, and which surveys, links,
history entries and messages a role is shown."""

from __future__ import annotations

from app.auth.principal import Role
from app.demo import demo_definition
from app.randomization.blinding import GroupMode, View, may_see_arms, policy_for
from app.studies.definition import StudyDefinition

OPEN_LABEL = [Role.admin, Role.unblinded_statistician, Role.coordinator]
DOUBLE_BLIND = [Role.admin, Role.unblinded_statistician]


def study(arm_visible_to: list[Role]) -> StudyDefinition:
    """The demo study with the given blinding and a timepoint of arm-limited questions."""
    document = demo_definition()
    document["blinding"] = {"arm_visible_to": [r.value for r in arm_visible_to]}
    document["schedule"].append(
        {
            "code": "group_check",
            "anchor": "randomization",
            "day": 30,
            "open_before": 0,
            "close_after": 14,
            "instruments": ["group_experience"],
        }
    )
    return StudyDefinition.model_validate(document)


def test_arms_are_seen_only_by_the_roles_the_study_lists():
    assert may_see_arms(Role.coordinator, OPEN_LABEL)
    assert not may_see_arms(Role.coordinator, DOUBLE_BLIND)
    assert not may_see_arms(Role.admin, [Role.unblinded_statistician])
    assert policy_for(Role.coordinator, study(OPEN_LABEL)).arms
    assert policy_for(Role.coordinator, study(DOUBLE_BLIND)).blind


def test_the_blinded_statistician_never_sees_an_arm_whatever_the_study_says():
    assert not may_see_arms(Role.statistician, [*OPEN_LABEL, Role.statistician])
    assert policy_for(Role.statistician, study(OPEN_LABEL)).blind


def test_block_sizes_and_the_secret_are_for_roles_that_read_the_ledger():
    assert policy_for(Role.coordinator, study(OPEN_LABEL)).view == View(arms=True, design=False)
    assert policy_for(Role.statistician, study(OPEN_LABEL)).view == View(arms=False, design=False)
    unblinded = policy_for(Role.unblinded_statistician, study(DOUBLE_BLIND))
    assert unblinded.view == View(arms=True, design=True)
    blind_admin = policy_for(Role.admin, study([Role.unblinded_statistician]))
    assert blind_admin.view == View(arms=False, design=True)


def test_a_blind_role_sees_no_timepoint_only_some_arms_have_and_no_link_that_differs_by_arm():
    blind = policy_for(Role.coordinator, study(DOUBLE_BLIND))
    assert blind.hidden_timepoints == {"group_check"}
    assert not blind.shows_timepoint("group_check") and blind.shows_timepoint("month_4")
    assert blind.shows_link("baseline")
    assert not blind.shows_link("month_4") and not blind.shows_link("group_check")
    assert blind.answers_alike("group_check") and not blind.answers_alike("month_4")
    assert not blind.shows_instrument("group_experience") and blind.shows_instrument("phq9")
    seeing = policy_for(Role.coordinator, study(OPEN_LABEL))
    assert seeing.hidden_timepoints == frozenset()
    assert seeing.shows_link("month_4") and not seeing.answers_alike("group_check")


def test_history_and_messages_of_hidden_surveys_and_unblinding_reasons_are_not_shown():
    blind = policy_for(Role.admin, study([Role.unblinded_statistician]))
    assert not blind.shows_history("survey.submitted", "PS-PHL-0001:group_check")
    assert blind.shows_history("survey.submitted", "PS-PHL-0001:month_4")
    assert blind.shows_history("participant.withdrawn", "PS-PHL-0001")
    assert not blind.shows_message("group_check") and blind.shows_message(None)
    assert not blind.shows_reason("participant.unblinded")
    assert blind.shows_reason("participant.withdrawn")
    assert policy_for(Role.admin, study(OPEN_LABEL)).shows_reason("participant.unblinded")


def test_a_correction_of_an_arm_limited_item_is_not_in_a_blind_roles_history():
    """Whatever the timepoint: month 4 is shared, its group questions are not."""
    blind = policy_for(Role.coordinator, study(DOUBLE_BLIND))
    corrected = "survey.answer_corrected"
    of_group = {"gx_helpful": {"old": 2, "new": 4}, "_scores": {"old": {}, "new": {}}}
    of_who5 = {"who5_1": {"old": 2, "new": 4}, "_scores": {"old": {}, "new": {}}}
    assert not blind.shows_history(corrected, "PS-PHL-0001:month_4", of_group)
    assert blind.shows_history(corrected, "PS-PHL-0001:month_4", of_who5)
    assert not blind.shows_history(corrected, "PS-PHL-0001:month_4")  # changes unknown
    # A save of the group's questions alone (only those arms can); one with others is not.
    saved = "survey.saved"
    assert not blind.shows_history(saved, "PS-PHL-0001:month_4", {"gx_frequency": {}})
    assert blind.shows_history(saved, "PS-PHL-0001:month_4", {"gx_frequency": {}, "who5_1": {}})
    # A save that names no answer (the group's page saves on "Back"): hidden for all.
    assert not blind.shows_history(saved, "PS-PHL-0001:month_4", {"_mode": {}})
    assert not blind.shows_history(saved, "PS-PHL-0001:month_4", {})
    assert blind.shows_history("survey.link_reissued", "PS-PHL-0001:month_4", {})
    assert not blind.shows_item("gx_helpful") and blind.shows_item("phq9_9")
    seeing = policy_for(Role.coordinator, study(OPEN_LABEL))
    assert seeing.shows_history(corrected, "PS-PHL-0001:month_4", of_group)
    assert seeing.shows_item("gx_helpful")


def test_reports_group_by_arm_by_code_or_pooled_and_the_unblinded_export_needs_arms():
    assert policy_for(Role.coordinator, study(OPEN_LABEL)).groups is GroupMode.arms
    assert policy_for(Role.statistician, study(OPEN_LABEL)).groups is GroupMode.coded
    assert policy_for(Role.coordinator, study(DOUBLE_BLIND)).groups is GroupMode.pooled
    assert policy_for(Role.admin, study(OPEN_LABEL)).may_export_unblinded()
    assert not policy_for(Role.admin, study([Role.unblinded_statistician])).may_export_unblinded()
    assert not policy_for(Role.coordinator, study(OPEN_LABEL)).may_export_unblinded()
