"""Who is due for a call (SPEC 11): each kind of call rule, a contact attempt's next
step, what clears them (reaching the participant, a later attempt), and who is never
due (withdrawn, nothing left to do, another site's participants for a coordinator).
The rules are SQL: both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from app.demo import demo_definition
from app.scheduler.runner import run_pass
from tests.helpers import Api, bearer, enrollment
from tests.surveys.test_api import _shift_window

STUDY = "calls-study"
BASE = f"/api/v1/studies/{STUDY}"
RULES = [
    {"code": "overdue_7", "kind": "survey_overdue", "days": 7},
    {"code": "failed_1", "kind": "messages_failed", "days": 1},
    {"code": "quiet_30", "kind": "no_contact", "days": 30},
]


def _today() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date().isoformat()


def _study(api: Api) -> None:
    admin = bearer(api.admin_token)
    document = demo_definition() | {"slug": STUDY, "retention": {"call_rules": RULES}}
    assert api.client.post("/api/v1/studies", json=document, headers=admin).status_code == 201
    for site in ("PHL", "PIT"):
        made = api.client.post(f"{BASE}/sites", json={"code": site, "name": site}, headers=admin)
        assert made.status_code == 201, made.text
    assert api.client.post(f"{BASE}/activate", headers=admin).status_code == 200


def _enroll(api: Api, token: str, site: str = "PHL", **contact: object) -> str:
    body = enrollment(site)
    body["contact"] = body["contact"] | contact
    made = api.client.post(f"{BASE}/participants", json=body, headers=bearer(token))
    assert made.status_code == 201, made.text
    return str(made.json()["code"])


def _enrolled_days_ago(db, code: str, days: int) -> None:  # type: ignore[no-untyped-def]
    with db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE participants SET enrolled_at = :at WHERE code = :c"),
            {"at": datetime.now(UTC) - timedelta(days=days), "c": code},
        )


def _due(api: Api, token: str) -> dict[str, list[tuple[str, object]]]:
    listed = api.client.get(f"{BASE}/calls", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    return {
        row["participant"]: sorted(
            (r["code"], r["timepoint"] or r["count"] or r["since"]) for r in row["reasons"]
        )
        for row in listed.json()["items"]
    }


def _contact(api: Api, token: str, code: str, outcome: str, **more: object) -> None:
    body = {"method": "phone", "outcome": outcome} | more
    made = api.client.post(f"{BASE}/participants/{code}/contacts", json=body, headers=bearer(token))
    assert made.status_code == 201, made.text


def test_call_rules_put_participants_on_the_list_and_contact_takes_them_off(api, mailer):
    db = mailer
    _study(api)
    coordinator = api.user("coordinator", "PHL", study=STUDY)
    overdue = _enroll(api, coordinator)
    _shift_window(db, overdue, "baseline", days=-8)  # opened 8 days ago, still open
    unreachable = _enroll(api, coordinator, email=None)  # the invitation cannot be sent
    run_pass(db)
    silent = _enroll(api, coordinator)
    _enrolled_days_ago(db, silent, 31)
    follow_up = _enroll(api, coordinator)
    _contact(api, coordinator, follow_up, "left_message", next_step_on=_today())
    withdrawn = _enroll(api, coordinator)
    _shift_window(db, withdrawn, "baseline", days=-8)
    left = api.client.post(
        f"{BASE}/participants/{withdrawn}/withdraw",
        json={"reason": "moved away"},
        headers=bearer(coordinator),
    )
    assert left.status_code == 200, left.text
    done = _enroll(api, coordinator)  # its only survey missed: nothing left to do
    _shift_window(db, done, "baseline", days=-30)
    _enrolled_days_ago(db, done, 31)
    elsewhere = _enroll(api, api.admin_token, site="PIT")
    _shift_window(db, elsewhere, "baseline", days=-8)

    assert _due(api, coordinator) == {
        overdue: [("overdue_7", "baseline")],
        unreachable: [("failed_1", 1)],
        silent: [
            (
                "quiet_30",
                (datetime.now(UTC) - timedelta(days=31))
                .astimezone(ZoneInfo("America/New_York"))
                .date()
                .isoformat(),
            )
        ],
        follow_up: [("next_step", _today())],
    }
    assert elsewhere in _due(api, api.admin_token)  # an admin sees every site

    _contact(api, coordinator, silent, "reached")  # reaching them clears no_contact
    _contact(api, coordinator, unreachable, "reached")  # and the failures before it
    _contact(api, coordinator, follow_up, "no_answer")  # a later attempt, no next step
    assert _due(api, coordinator) == {overdue: [("overdue_7", "baseline")]}
    listed = api.client.get(f"{BASE}/calls?limit=1", headers=bearer(coordinator)).json()
    assert [i["last_attempt"] for i in listed["items"]] == [None]
    rest = api.client.get(
        listed["next"].removeprefix("http://testserver"), headers=bearer(coordinator)
    )
    assert rest.json() == {"items": [], "next": None}
