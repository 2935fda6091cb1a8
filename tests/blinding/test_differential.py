"""The differential blinding test: for a role that may not see arms, nothing the
product answers about a participant depends on the arm (SPEC 6b).

Two worlds (blinded copies of the demo study) differ only by which participant is in
which arm; three participants in different arms go through the same actions. Every
surface of `tests/blinding/harness.py` is fetched by each blind role (a coordinator and
an admin the study leaves out of `arm_visible_to`, and the statistician) and compared:
each participant against the others in a world, and each world against the other.
A safety reviewer the study shows arms to records each adverse event's medical review by
arm (`harness.review_by_arm`): what a blind role is shown of it must not differ either.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.blinding import harness
from tests.blinding.harness import Comparison


@pytest.fixture
def on_the_host(settings: Settings) -> Iterator[TestClient]:
    """A client of an app that lets it read `/metrics` (the counters are the process's)."""
    with TestClient(create_app(settings.model_copy(update={"metrics_allowed_from": ["*"]}))) as c:
        yield c


def test_what_a_blind_role_is_answered_does_not_depend_on_the_arm(
    api, db, client, mailer, on_the_host
):
    worlds = harness.twin_worlds(api, db)
    staff = harness.blind_staff(api, db, client, list(worlds), on_the_host)
    coordinator = staff.tokens["coordinator"]
    reviewer = harness.safety_reviewer(api)  # sees arms: reviews by arm
    unblinded = api.user("unblinded_statistician")  # sees arms: loads engagement by arm
    fetched: dict[str, harness.Fetched] = {"A": {}, "B": {}}
    counters: dict[str, dict[str, float]] = {}
    for label, world in zip(("A", "B"), worlds, strict=True):
        before = harness.metrics(on_the_host)
        got = fetched[label]
        harness.enroll_and_randomize(api, db, world, coordinator)  # in the last language
        harness.load_engagement_by_arm(api, world, unblinded)  # the use differs by arm
        harness.sign_up_online(db, world)  # CONSORT's online sign-ups, the applicants' queue
        harness.scheduler(mailer)  # the follow-ups' invitations: they fail (no address)
        harness.answer_surveys(api, db, world)
        harness.scheduler(mailer)  # the safety alerts go to the coordinator
        got |= harness.fetch_alerted(staff, world, label)  # the acknowledgement form
        harness.open_events(api, world, coordinator)  # each alert: an adverse event
        harness.log_contacts(api, db, world, coordinator)  # due for a call; recall's reason
        harness.record_deviations(api, world, coordinator)  # one recorded, one proposed
        got |= harness.fetch_participants(staff, world, label, "active")
        got |= harness.fetch_study(staff, world, label, "active")
        got |= harness.act_on_surveys(staff, world, label, "acted")
        # A follow-up, the medical review (by arm), the proposals confirmed.
        harness.follow_up_and_review(api, staff, world, coordinator, reviewer)
        harness.pay_incentives(api, world, coordinator)  # approved, the vendor's file
        harness.scheduler(mailer, days=3)  # reminders, resent invitations
        harness.text_in(db, world)  # each participant texts the study: the worklist's top
        got |= harness.fetch_participants(staff, world, label, "reminded")
        got |= harness.fetch_study(staff, world, label, "reminded")
        harness.report_and_close(api, staff, world, coordinator)  # deadlines met, closed
        harness.withdraw_all(api, world, coordinator, kind="intervention", category="burden")
        got |= harness.fetch_participants(staff, world, label, "stopped intervention")
        harness.withdraw_all(api, world, coordinator)
        got |= harness.fetch_participants(staff, world, label, "withdrawn")
        got |= harness.fetch_study(staff, world, label, "withdrawn", once=True)  # PDFs
        counters[label] = harness.added(before, harness.metrics(on_the_host))

    comparison = Comparison()
    for label in ("A", "B"):
        harness.compare_participants(fetched[label], comparison)
    harness.compare_worlds(fetched["A"], fetched["B"], comparison)
    comparison.same(
        "/metrics: what each world's run added",
        "\n".join(f"{k} {v:g}" for k, v in sorted(counters["A"].items())),
        "\n".join(f"{k} {v:g}" for k, v in sorted(counters["B"].items())),
    )
    surfaces = {key[2] for key in fetched["A"]}
    print(
        f"\ndifferential blinding: {comparison.compared} comparisons of "
        f"{len(surfaces) + 1} surfaces (with /metrics), {len(harness.BLIND_ROLES)} blind roles "
        f"x 2 worlds x {harness.PARTICIPANTS} participants in different arms; "
        f"{len(comparison.differences)} differ; known leaks left ({len(harness.KNOWN_LEAKS)} "
        f"surfaces): {len(comparison.known)} differences"
    )
    headings = [d.splitlines()[0] for d in comparison.differences]
    assert not comparison.differences, "\n".join(
        [*headings, "", *comparison.differences[:20], f"{len(headings)} differences in all"]
    )
