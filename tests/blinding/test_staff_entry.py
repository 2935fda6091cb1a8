"""Staff data entry and corrections for a coordinator the study keeps blind to arms: the
same answers for a participant with and without the instruments only some arms have.

A timepoint made only of arm-limited instruments (`group_check`, `group_recall`) is "no
survey" (404) for every arm, whether or not the participant has it: read, entered,
submitted or corrected. At a shared timepoint with an arm-limited instrument (`month_1`,
`recall`), a blind coordinator reads, enters and corrects the instruments every arm
answers, and the arm-limited one is not there for them ("Not a question of this
survey" for every arm); the survey is then completed without it.
"""

from __future__ import annotations

from sqlalchemy import select

from app.studies.models import Study
from app.surveys.models import SurveyInstance
from tests.blinding import harness
from tests.helpers import bearer, study_today

LISTSERV, CONTROL, BOARD = 0, 1, 2
WHO5 = {f"who5_{i}": 2 for i in range(1, 6)}
PHQ9 = {f"phq9_{i}": 1 for i in range(1, 10)} | {"phq9_9": 0}
REASON = "read back to the participant, who corrected it"


def _steps(today: str) -> list[tuple[str, str, str, object]]:
    """(method, what after .../surveys/{timepoint}, timepoint, body): done in this order
    for each participant, as the blind coordinator; the interviews are dated `today`, the
    study's own day (an interview dated after it is refused)."""
    return [
        ("GET", "", "group_check", None),
        ("PUT", "/answers", "group_check", {"answers": harness.GROUP_ANSWERS}),
        ("POST", "/submit", "group_check", {"answers": {}, "interviewed_on": today}),
        (
            "POST",
            "/corrections",
            "group_check",
            {"item": "gx_helpful", "value": 1, "reason": REASON},
        ),
        ("GET", "", "group_recall", None),
        ("POST", "/submit", "group_recall", {"answers": {}, "interviewed_on": today}),
        ("GET", "", "month_1", None),
        ("PUT", "/answers", "month_1", {"answers": {"gx_frequency": 3}}),
        ("PUT", "/answers", "month_1", {"answers": {"who5_1": 4}, "interviewed_on": today}),
        ("POST", "/submit", "month_1", {"answers": WHO5 | {"gx_helpful": 2}}),
        # A null for the arm-limited item takes nothing back: the blind coordinator is not
        # shown it (the list-serv participant's own answer stays, checked below).
        ("POST", "/submit", "month_1", {"answers": WHO5 | PHQ9 | {"gx_frequency": None}}),
        ("GET", "", "month_1", None),
        ("POST", "/corrections", "month_1", {"item": "gx_frequency", "value": 1, "reason": REASON}),
        ("POST", "/corrections", "month_1", {"item": "who5_3", "value": 5, "reason": REASON}),
        ("POST", "/submit", "recall", {"answers": WHO5, "interviewed_on": today}),
        ("GET", "", "recall", None),
        ("GET", "", "month_12", None),
        ("PUT", "/answers", "month_12", {"answers": WHO5}),
    ]


def _run(api, world, token: str, index: int) -> list[str]:
    code = world.codes[index]
    base = f"/api/v1/studies/{world.slug}/participants/{code}/surveys"
    answers = []
    for method, what, timepoint, body in _steps(study_today().isoformat()):
        response = api.client.request(
            method, f"{base}/{timepoint}{what}", json=body, headers=bearer(token)
        )
        text = harness.answer(response, slug=world.slug, code=code)
        answers.append(f"{method} {timepoint}{what}: {text}")
    return answers


def test_a_blind_coordinator_enters_and_corrects_alike_for_every_arm(api, db, client):
    world = harness.create_world(api, db, "blind-entry")
    harness.start_world(api, world, list(harness.ARMS))
    staff = harness.blind_staff(api, db, client, [world], client)
    coordinator = staff.tokens["coordinator"]
    harness.enroll_and_randomize(api, db, world, coordinator)
    assert harness.token_of(db, world, LISTSERV, "group_check") is not None
    assert harness.token_of(db, world, CONTROL, "group_check") is None
    # What only one arm can do: the list-serv participant answers a question about the
    # group through the link. The blind coordinator is answered as for the control.
    own = harness.token_of(db, world, LISTSERV, "month_1")
    saved = api.client.put(f"/api/v1/surveys/{own}/answers", json={"gx_frequency": 3})
    assert saved.status_code == 200, saved.text

    listserv = _run(api, world, coordinator, LISTSERV)
    control = _run(api, world, coordinator, CONTROL)
    for mine, theirs in zip(listserv, control, strict=True):
        assert mine == theirs
    status = {line.split(": ", 1)[0]: line.split(": ", 1)[1][:3] for line in listserv}
    assert status["GET group_check"] == status["POST group_check/submit"] == "404"
    assert status["PUT month_1/answers"] == "200" and status["GET month_1"] == "200"
    assert "Not a question of this survey" in listserv[7]
    assert '"status":"completed"' in listserv[11] and '"mode":"staff"' in listserv[11]
    assert '"instruments":["who5","phq9"]' in listserv[11]
    assert '"assessor_blind":true' in listserv[11]  # the study keeps coordinators blind
    assert status["GET month_12"] == "200" and status["PUT month_12/answers"] == "409"

    # Where the participant has the arm-limited instrument, what they answered there is
    # kept and scored; the rest stays unanswered (the survey is completed).
    with db.session(write=False) as session:
        kept = session.scalars(
            select(SurveyInstance).where(
                SurveyInstance.participant_code == world.codes[LISTSERV],
                SurveyInstance.timepoint == "month_1",
                SurveyInstance.study_id
                == select(Study.id).where(Study.slug == world.slug).scalar_subquery(),
            )
        ).one()
        assert kept.answers["gx_frequency"] == 3 and kept.scores["gx_engagement"] == 3
    admin = api.client.get(
        f"/api/v1/studies/{world.slug}/participants/{world.codes[LISTSERV]}/surveys/month_1",
        headers=bearer(api.admin_token),
    ).json()
    assert admin["instruments"] == ["who5", "phq9"]  # the admin is blind here too


def test_a_coordinator_the_study_shows_arms_to_enters_the_arm_limited_instrument(api, db):
    world = harness.create_world(api, db, "open-entry", arm_visible_to=("coordinator",))
    harness.start_world(api, world, list(harness.ARMS))
    coordinator = api.user("coordinator", "PHL", study=world.slug)
    harness.enroll_and_randomize(api, db, world, coordinator)

    def submit(index: int, timepoint: str, answers: dict) -> tuple[int, dict]:
        url = (
            f"/api/v1/studies/{world.slug}/participants/{world.codes[index]}"
            f"/surveys/{timepoint}/submit"
        )
        body = {"answers": answers, "interviewed_on": study_today().isoformat()}
        response = api.client.post(url, json=body, headers=bearer(coordinator))
        return response.status_code, response.json()

    status, body = submit(BOARD, "month_1", WHO5 | PHQ9 | harness.GROUP_ANSWERS)
    assert status == 200 and body["instruments"] == ["who5", "phq9", "group_experience"]
    assert body["answers"]["gx_frequency"] == 3 and body["assessor_blind"] is False
    assert submit(CONTROL, "month_1", WHO5 | PHQ9 | {"gx_frequency": 3})[0] == 422
    assert submit(LISTSERV, "group_check", harness.GROUP_ANSWERS)[0] == 200
    assert submit(CONTROL, "group_check", harness.GROUP_ANSWERS)[0] == 404
