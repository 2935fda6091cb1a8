"""The role matrix: every route of the API, for every kind of caller → the expected status.

The expectations follow API.md: a missing or unknown token gets 401, a known token
without the right 403, and an object outside the caller's sites 404. Each caller gets
fresh state before its call (a new participant, a new draft study, a unique email...),
so that a permitted role gets its success status and not a 409 left by another caller.

A route of the application that is missing from `EXPECTED` fails
`test_matrix_covers_every_route`, and so does an entry for a route that no longer exists.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from app.consent.documents import document_sha256
from app.db.base import utcnow
from app.demo import demo_definition
from app.studies.definition import StudyDefinition
from app.texting.service import Inbound, receive
from tests.helpers import BASELINE_ANSWERS, STUDY, Api, bearer, enrollment

CALLERS = (
    "anonymous",  # no Authorization header
    "bad_token",  # a well-formed bearer token that the server never issued
    "admin",
    "coordinator",  # coordinator of site PHL of the demo study
    "other_coordinator",  # coordinator of site PIT of the demo study only
    "statistician",
    "unblinded_statistician",
)

S = f"/api/v1/studies/{STUDY}"

ALTERNATE_CONTACT = {"name": "Ann", "relation": "sister", "phone": "215-555-0123"}

# fmt: off
_MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int, int, int]] = {
    #                                                          anon bad admin coord other stat ustat
    ("POST", "/api/v1/users"):                                 (401, 401, 201, 403, 403, 403, 403),
    ("GET",  "/api/v1/users/me"):                              (401, 401, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/users/{user_id}/tokens"):                (401, 401, 201, 403, 403, 403, 403),
    ("DELETE", "/api/v1/users/{user_id}/tokens"):              (401, 401, 204, 403, 403, 403, 403),
    ("POST", "/api/v1/users/{user_id}/deactivate"):            (401, 401, 200, 403, 403, 403, 403),
    ("POST", "/api/v1/studies"):                               (401, 401, 201, 403, 403, 403, 403),
    ("GET",  "/api/v1/studies"):                               (401, 401, 200, 200, 200, 200, 200),
    ("GET",  "/api/v1/studies/{slug}"):                        (401, 401, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/studies/{slug}/activate"):               (401, 401, 200, 403, 403, 403, 403),
    ("POST", "/api/v1/studies/{slug}/sites"):                  (401, 401, 201, 403, 403, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants"):           (401, 401, 201, 201, 403, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/participants"):           (401, 401, 200, 200, 200, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/participants/{code}"):    (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/withdraw"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/randomize"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/unblind"):
                                                               (401, 401, 200, 403, 403, 403, 200),
    ("GET",  "/api/v1/studies/{slug}/allocations"):            (401, 401, 200, 403, 403, 403, 200),
    ("GET",  "/api/v1/studies/{slug}/audit"):                  (401, 401, 200, 403, 403, 403, 403),
    ("GET",  "/api/v1/audit"):                                 (401, 401, 200, 403, 403, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/audit/head"):             (401, 401, 200, 403, 403, 403, 403),
    ("POST", "/api/v1/studies/{slug}/simulate"):               (401, 401, 200, 403, 403, 403, 403),
    ("POST", "/api/v1/studies/{slug}/lock"):                   (401, 401, 200, 403, 403, 403, 403),
    ("PUT",  "/api/v1/studies/{slug}/allocation-table"):       (401, 401, 200, 403, 403, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/reissue"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/resend"):
                                                               (401, 401, 202, 202, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("PUT",  "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/answers"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/submit"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/corrections"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/schedule"):               (401, 401, 200, 200, 200, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/alerts"):                 (401, 401, 200, 200, 200, 403, 403),
    ("POST", "/api/v1/studies/{slug}/alerts/{alert_id}/acknowledge"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/messages"):               (401, 401, 200, 200, 200, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/events"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/events"):                 (401, 401, 200, 200, 200, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/events/{event_id}"):      (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/events/{event_id}/versions"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/events/{event_id}/deadlines/{code}/report"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/safety/due"):             (401, 401, 200, 200, 200, 403, 403),
    # protocol deviations (SPEC 9): recorded by coordinators and admins, read also by
    # safety reviewers; never by statisticians
    ("POST", "/api/v1/studies/{slug}/participants/{code}/deviations"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/deviations"):             (401, 401, 200, 200, 200, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/deviations/{deviation_id}"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/deviations/{deviation_id}/versions"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/deviations/propose"):     (401, 401, 200, 200, 200, 403, 403),
    # the contact log and locator (SPEC 11): coordinators of the site and admins
    ("POST", "/api/v1/studies/{slug}/participants/{code}/contacts"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/participants/{code}/contacts"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("PUT",  "/api/v1/studies/{slug}/participants/{code}/contact"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/alternate-contacts"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/participants/{code}/alternate-contacts"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/alternate-contacts/{contact_id}/remove"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    # a new participant's baseline is open, not missed: past the role check, a 409
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/missed-reason"):
                                                               (401, 401, 409, 409, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/calls"):                  (401, 401, 200, 200, 200, 403, 403),
    # the incentives ledger (SPEC 11): coordinators of the site and admins; gift cards
    # are loaded by admins only
    ("GET",  "/api/v1/studies/{slug}/incentives"):             (401, 401, 200, 200, 200, 403, 403),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/approve"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/hold"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/void"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/redeem"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/issue"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/card"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/incentives/vendor-file"): (401, 401, 200, 200, 200, 403, 403),
    # a past file of PHL entries: none of it at PIT
    ("GET",  "/api/v1/studies/{slug}/incentives/vendor-file"): (401, 401, 200, 200, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/incentives/vendor-files"):
                                                               (401, 401, 200, 200, 200, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/incentives/totals"):      (401, 401, 200, 200, 200, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/incentives/reconciliation"):
                                                               (401, 401, 200, 200, 200, 403, 403),
    ("POST", "/api/v1/studies/{slug}/gift-cards"):             (401, 401, 200, 403, 403, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/gift-cards/summary"):     (401, 401, 200, 200, 200, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/exports/blinded"):        (401, 401, 200, 403, 403, 200, 200),
    ("GET",  "/api/v1/studies/{slug}/exports/codebook"):       (401, 401, 200, 403, 403, 200, 200),
    ("GET",  "/api/v1/studies/{slug}/exports/package"):        (401, 401, 200, 403, 403, 200, 200),
    ("GET",  "/api/v1/studies/{slug}/exports/participants"):   (401, 401, 200, 403, 403, 200, 200),
    ("GET",  "/api/v1/studies/{slug}/exports/unblinded"):      (401, 401, 200, 403, 403, 403, 200),
    # engagement reveals the arm (SPEC 11): roles that load it and see arms only
    ("GET",  "/api/v1/studies/{slug}/exports/unblinded/engagement"):
                                                               (401, 401, 200, 403, 403, 403, 200),
    ("POST", "/api/v1/studies/{slug}/engagement"):             (401, 401, 200, 403, 403, 403, 200),
    ("GET",  "/api/v1/studies/{slug}/engagement/summary"):     (401, 401, 200, 403, 403, 403, 200),
    # aggregate counts; groups coded for roles the study hides arms from
    ("GET",  "/api/v1/studies/{slug}/reports/consort"):        (401, 401, 200, 200, 200, 200, 200),
    ("GET",  "/api/v1/studies/{slug}/reports/retention"):      (401, 401, 200, 200, 200, 200, 200),
    # the DSMB report's closed part: never a coordinator, even where the study shows
    # them arms (the open part is every staff role's: tests/reports/test_dsmb.py)
    ("GET",  "/api/v1/studies/{slug}/reports/dsmb"):           (401, 401, 200, 403, 403, 403, 200),
    # the ClinicalTrials.gov tables: roles that see arms, once the study is locked
    ("GET",  "/api/v1/studies/{slug}/reports/ctgov-adverse-events"):
                                                               (401, 401, 409, 403, 403, 403, 409),
    ("GET",  "/api/v1/studies/{slug}/reports/balance"):        (401, 401, 200, 200, 200, 200, 200),
    # remote enrollment (SPEC 10): sign-ups held for review and the check of a
    # self-reported diagnosis, by a coordinator of the site or an admin
    ("GET",  "/api/v1/studies/{slug}/applicants"):             (401, 401, 200, 200, 200, 403, 403),
    ("POST", "/api/v1/studies/{slug}/applicants/{applicant_id}/accept"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/applicants/{applicant_id}/reject"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/verify"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    # consents: a coordinator of the site or an admin; amendments the admin's alone
    ("GET",  "/api/v1/studies/{slug}/participants/{code}/consents"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/consents"):
                                                               (401, 401, 201, 201, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/participants/{code}/consents/{consent_id}.pdf"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    # the demo study asks for no countersignature: past the role check, a 409
    ("POST", "/api/v1/studies/{slug}/participants/{code}/consents/{consent_id}/countersign"):
                                                               (401, 401, 409, 409, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/consents/outstanding"):   (401, 401, 200, 200, 200, 403, 403),
    ("POST", "/api/v1/studies/{slug}/consent-versions"):       (401, 401, 201, 403, 403, 403, 403),
    # text messages (SPEC 11): texting preferences and participants' texts, by a
    # coordinator of the site or an admin; the provider's webhooks need its signature,
    # and without a provider (the tests' file backend) they do not exist: 404
    ("PUT",  "/api/v1/studies/{slug}/participants/{code}/texting"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("GET",  "/api/v1/studies/{slug}/sms/replies"):            (401, 401, 200, 200, 200, 403, 403),
    ("POST", "/api/v1/studies/{slug}/sms/replies/{reply_id}/handle"):
                                                               (401, 401, 200, 200, 404, 403, 403),
    ("POST", "/api/v1/sms/status"):                            (404, 404, 404, 404, 404, 404, 404),
    ("POST", "/api/v1/sms/inbound"):                           (404, 404, 404, 404, 404, 404, 404),
    # a survey link needs no account: whoever holds it reaches the survey
    ("GET",  "/api/v1/surveys/{token}"):                       (200, 200, 200, 200, 200, 200, 200),
    ("PUT",  "/api/v1/surveys/{token}/answers"):               (200, 200, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/surveys/{token}/submit"):                (200, 200, 200, 200, 200, 200, 200),
    ("GET",  "/s/{token}"):                                    (200, 200, 200, 200, 200, 200, 200),
    ("POST", "/s/{token}"):                                    (200, 200, 200, 200, 200, 200, 200),
    ("GET",  "/s/{token}/language/{code}"):                    (200, 200, 200, 200, 200, 200, 200),
    ("GET",  "/healthz"):                                      (200, 200, 200, 200, 200, 200, 200),
    ("GET",  "/readyz"):                                       (200, 200, 200, 200, 200, 200, 200),
    # the test client's address is not among those allowed (this host by default)
    ("GET",  "/metrics"):                                      (404, 404, 404, 404, 404, 404, 404),
}
# fmt: on

EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    route: dict(zip(CALLERS, statuses, strict=True)) for route, statuses in _MATRIX.items()
}

# (method, path, caller) → why the implementation is known to disagree with API.md.
# Each is run as its own case marked xfail(strict=True), so fixing the app makes it fail
# until the entry is removed here. Empty: no disagreement is known.
KNOWN_DEVIATIONS: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Call:
    url: str
    json: Any = None
    csv: str | None = None
    form: dict[str, str] | None = None


@dataclass
class Ctx:
    """One test's callers and the fresh state each call needs."""

    api: Api
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, api: Api) -> Ctx:
        return cls(
            api,
            {
                "admin": api.admin_token,
                "coordinator": api.user("coordinator", "PHL"),
                "other_coordinator": api.user("coordinator", "PIT"),
                "statistician": api.user("statistician"),
                "unblinded_statistician": api.user("unblinded_statistician"),
            },
        )

    def headers(self, caller: str) -> dict[str, str]:
        if caller == "anonymous":
            return {}
        if caller == "bad_token":
            return bearer("td_" + "x" * 43)
        return bearer(self.tokens[caller])

    def new_user(self) -> int:
        """A new statistician (made by the admin); its id."""
        body = {"email": f"{_unique('rm-u')}@example.org", "name": "U", "role": "statistician"}
        response = self.api.client.post(
            "/api/v1/users", json=body, headers=bearer(self.api.admin_token)
        )
        assert response.status_code == 201, response.text
        user_id: int = response.json()["id"]
        return user_id

    def enrolled(self) -> str:
        """A new participant enrolled at PHL (by the admin); its code."""
        return self.api.enroll(self.api.admin_token, site="PHL")

    def baseline_done(self) -> str:
        """A new participant (PHL) whose baseline survey is completed; its code."""
        code = self.enrolled()
        self.api.complete_survey(code)
        return code

    def survey(self) -> str:
        """The token of a new participant's open baseline survey."""
        return self.api.survey_token(self.enrolled())

    def survey_form(self) -> Call:
        """Saving one answer through a new participant's survey page (with its form's
        csrf token, read from the page)."""
        token = self.survey()
        page = self.api.client.get(f"/s/{token}?part=1").text  # past the intro page
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
        assert found, page[:300]
        form = {"csrf_token": found.group(1), "part": "1", "action": "save", "who5_1": "2"}
        return Call(f"/s/{token}", form=form)

    def alert(self) -> int:
        """A new safety alert at PHL (a baseline answered with thoughts of self-harm)."""
        code = self.enrolled()
        self.api.complete_survey(code, answers=BASELINE_ANSWERS | {"phq9_9": 2})
        alerts = self.api.client.get(f"{S}/alerts", headers=bearer(self.api.admin_token)).json()[
            "items"
        ]
        alert_id: int = next(a["id"] for a in alerts if a["participant"] == code)
        return alert_id

    def adverse_event(self) -> int:
        """A new serious, unexpected, related adverse event at PHL (its IRB deadline
        applies); its id."""
        response = self.api.client.post(
            f"{S}/participants/{self.enrolled()}/events",
            json=ADVERSE_EVENT,
            headers=bearer(self.api.admin_token),
        )
        assert response.status_code == 201, response.text
        event_id: int = response.json()["id"]
        return event_id

    def deviation(self) -> int:
        """A new protocol deviation of a new participant at PHL (by the admin); its id."""
        response = self.api.client.post(
            f"{S}/participants/{self.enrolled()}/deviations",
            json=_deviation_body(),
            headers=bearer(self.api.admin_token),
        )
        assert response.status_code == 201, response.text
        deviation_id: int = response.json()["id"]
        return deviation_id

    def alternate_contact(self) -> str:
        """A new participant at PHL with an alternate contact (by the admin): the path of
        that contact."""
        code = self.enrolled()
        response = self.api.client.post(
            f"{S}/participants/{code}/alternate-contacts",
            json=ALTERNATE_CONTACT | {"permission_on": _study_today()},
            headers=bearer(self.api.admin_token),
        )
        assert response.status_code == 201, response.text
        return f"{S}/participants/{code}/alternate-contacts/{response.json()['id']}"

    def incentive(self, *steps: str) -> int:
        """The completion entry of a new PHL participant's baseline (completed by the
        link: earned), taken through `steps` by the admin; its id. Issuing loads a card."""
        code = self.baseline_done()
        admin = bearer(self.api.admin_token)
        listed = self.api.client.get(f"{S}/incentives?participant={code}", headers=admin)
        entry: int = next(e["id"] for e in listed.json()["items"] if e["kind"] == "completion")
        for step in steps:
            if step == "issue":
                self.gift_card()
            body = {"reason": "fraud review"} if step in ("hold", "void") else None
            done = self.api.client.post(f"{S}/incentives/{entry}/{step}", json=body, headers=admin)
            assert done.status_code == 200, done.text
        return entry

    def gift_card(self) -> None:
        """A new $25 card loaded by the admin."""
        loaded = self.api.client.post(
            f"{S}/gift-cards",
            content=f"code,amount,currency\n{_unique('GC')},25,USD\n",
            headers={**bearer(self.api.admin_token), "content-type": "text/csv"},
        )
        assert loaded.status_code == 200 and loaded.json()["loaded"] == 1, loaded.text

    def issuable(self) -> int:
        """An approved $25 entry, and a free $25 card to issue it with; its id."""
        self.gift_card()
        return self.incentive("approve")

    def vendor_file(self) -> str:
        """When the admin's vendor file of a new approved PHL entry was made."""
        self.incentive("approve")
        made = self.api.client.post(
            f"{S}/incentives/vendor-file", headers=bearer(self.api.admin_token)
        )
        assert made.status_code == 200 and made.json()["entries"] >= 1, made.text
        issued_at: str = made.json()["issued_at"]
        return issued_at

    def applicant(self) -> int:
        """A new sign-up at PHL held for review; its id. Its screening filled the
        honeypot, so it is held, and it goes on to sign like anyone."""
        client = self.api.client
        screened = client.post(
            f"/join/{STUDY}/PHL", data=JOIN_SCREENING | {"website": "x"}, follow_redirects=False
        )
        assert screened.status_code == 303, screened.text
        contact = screened.headers["location"]
        email = f"{_unique('rm-join')}@example.org"
        sent = client.post(
            contact, data={"name": JOIN_NAME, "email": email}, follow_redirects=False
        )
        assert sent.status_code == 303, sent.text
        base = contact.rsplit("/", 1)[0]
        signed = client.post(f"{base}/sign", data=JOIN_SIGNATURE, follow_redirects=False)
        assert signed.headers.get("location") == f"{base}/done", signed.text
        listed = client.get(f"{S}/applicants", headers=bearer(self.api.admin_token))
        held = [a for a in listed.json()["items"] if a["email"] == email]
        assert [a["state"] for a in held] == ["held"], listed.text
        applicant_id: int = held[0]["id"]
        return applicant_id

    def sms_reply(self) -> int:
        """A text from a new participant at PHL, as the inbound webhook records it."""
        self.enrolled()  # the newest participant with the helpers' phone number
        db = self.api.client.app.state.db  # type: ignore[attr-defined]
        text = Inbound(provider_ref=uuid.uuid4().hex, from_number="+12155550100", body="hi")
        with db.begin() as session:
            reply = receive(session, text=text, now=utcnow())
            assert reply is not None and reply.site_id is not None
            return int(reply.id)

    def joined(self) -> str:
        """A new participant at PHL who signed up online (a held sign-up the admin
        accepted): consented electronically, diagnosis not yet verified; its code."""
        accepted = self.api.client.post(
            f"{S}/applicants/{self.applicant()}/accept", headers=bearer(self.api.admin_token)
        )
        assert accepted.status_code == 200, accepted.text
        code: str = accepted.json()["participant"]
        return code

    def signed_consent(self, then: str = "") -> Call:
        """A call on the signed consent of a new online participant (`then`: the path
        after its id)."""
        code = self.joined()
        listed = self.api.client.get(
            f"{S}/participants/{code}/consents", headers=bearer(self.api.admin_token)
        )
        assert listed.status_code == 200, listed.text
        [consent] = [c for c in listed.json() if c["method"] == "electronic"]
        return Call(f"{S}/participants/{code}/consents/{consent['id']}{then}")

    def consent_version(self) -> Call:
        """A new consent version (in the study's languages) for a new enrolling study."""
        slug = self.enrolling_study()
        document = dict(demo_definition()["consent"]["documents"][-1], version="2.0")
        return Call(f"/api/v1/studies/{slug}/consent-versions", document)

    def randomized(self) -> str:
        code = self.enrolled()
        response = self.api.randomize(self.api.admin_token, code)
        assert response.status_code == 200, response.text
        return code

    def draft_study(self, method: str = "blocks") -> str:
        """A new draft study (by the admin); its slug."""
        slug = _unique("rm-draft")
        definition = _study_definition(slug)
        definition["randomization"]["method"] = method
        response = self.api.client.post(
            "/api/v1/studies", json=definition, headers=bearer(self.api.admin_token)
        )
        assert response.status_code == 201, response.text
        return slug

    def enrolling_study(self) -> str:
        """A new activated study (by the admin); its slug."""
        slug = self.draft_study()
        response = self.api.client.post(
            f"/api/v1/studies/{slug}/activate", headers=bearer(self.api.admin_token)
        )
        assert response.status_code == 200, response.text
        return slug


ADVERSE_EVENT = {
    "AETERM": "Hospitalised",
    "AESTDTC": "2026-01",
    "AESEV": "severe",
    "AESER": True,
    "AESHOSP": True,
    "AEREL": "possible",
    "AEEXPECT": False,
    "AEOUT": "recovering",
    "AEACN": "none",
}


# The demo's public screening, met, and its signature with the consent quiz answered.
JOIN_SCREENING = {
    "c-age_18_plus": "yes",
    "c-smi_diagnosis": "yes",
    "c-internet_access": "yes",
    "s-diagnosis": "bipolar",
}
JOIN_NAME = "Robin Matrix"
_DEMO_CONSENT = StudyDefinition.model_validate(demo_definition()).consent.active()
assert _DEMO_CONSENT is not None
JOIN_SIGNATURE = {
    "step": "sign",
    "document": document_sha256(_DEMO_CONSENT, "en"),  # the document the person was shown
    "q-choose_group": "random",
    "q-stop_any_time": "yes",
    "q-hurt_answers": "call",
    "typed_name": JOIN_NAME,
    "agree": "yes",
}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _study_definition(slug: str) -> dict[str, Any]:
    definition = demo_definition()
    definition["slug"] = slug
    return definition


def _deviation_body() -> dict[str, Any]:
    today = datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date()  # the demo's
    return {
        "category": "other",
        "occurred_on": today.isoformat(),
        "description": "Visit done by phone instead of in person",
        "important": False,
    }


def _user_body(_ctx: Ctx) -> Call:
    email = f"{_unique('rm-user')}@example.org"
    return Call("/api/v1/users", {"email": email, "name": "New", "role": "statistician"})


# How to make each route's call, given fresh state: run once per caller.
def _study_today() -> str:
    """Today in the demo study's time zone (an interview cannot be dated after it)."""
    return datetime.now(ZoneInfo(demo_definition()["timezone"])).date().isoformat()


REQUESTS: dict[tuple[str, str], Callable[[Ctx], Call]] = {
    ("POST", "/api/v1/users"): _user_body,
    ("GET", "/api/v1/users/me"): lambda ctx: Call("/api/v1/users/me"),
    ("POST", "/api/v1/users/{user_id}/tokens"): lambda ctx: Call(
        f"/api/v1/users/{ctx.new_user()}/tokens"
    ),
    ("DELETE", "/api/v1/users/{user_id}/tokens"): lambda ctx: Call(
        f"/api/v1/users/{ctx.new_user()}/tokens"
    ),
    ("POST", "/api/v1/users/{user_id}/deactivate"): lambda ctx: Call(
        f"/api/v1/users/{ctx.new_user()}/deactivate", {"reason": "left the study team"}
    ),
    ("POST", "/api/v1/studies"): lambda ctx: Call(
        "/api/v1/studies", _study_definition(_unique("rm-study"))
    ),
    ("GET", "/api/v1/studies"): lambda ctx: Call("/api/v1/studies"),
    ("GET", "/api/v1/studies/{slug}"): lambda ctx: Call(S),
    ("POST", "/api/v1/studies/{slug}/activate"): lambda ctx: Call(
        f"/api/v1/studies/{ctx.draft_study()}/activate"
    ),
    ("POST", "/api/v1/studies/{slug}/sites"): lambda ctx: Call(
        f"{S}/sites", {"code": "S" + uuid.uuid4().hex[:8].upper(), "name": "New site"}
    ),
    ("POST", "/api/v1/studies/{slug}/participants"): lambda ctx: Call(
        f"{S}/participants", enrollment("PHL")
    ),
    ("GET", "/api/v1/studies/{slug}/participants"): lambda ctx: Call(f"{S}/participants"),
    ("GET", "/api/v1/studies/{slug}/participants/{code}"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}"
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/withdraw"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/withdraw", {"reason": "moved away"}
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/randomize"): lambda ctx: Call(
        f"{S}/participants/{ctx.baseline_done()}/randomize"
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/reissue"): (
        lambda ctx: Call(f"{S}/participants/{ctx.enrolled()}/surveys/baseline/reissue")
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/resend"): (
        lambda ctx: Call(f"{S}/participants/{ctx.enrolled()}/surveys/baseline/resend")
    ),
    ("GET", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}"): (
        lambda ctx: Call(f"{S}/participants/{ctx.enrolled()}/surveys/baseline")
    ),
    ("PUT", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/answers"): (
        lambda ctx: Call(
            f"{S}/participants/{ctx.enrolled()}/surveys/baseline/answers",
            {"answers": {"who5_1": 2}},
        )
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/submit"): (
        lambda ctx: Call(
            f"{S}/participants/{ctx.enrolled()}/surveys/baseline/submit",
            {"answers": BASELINE_ANSWERS, "interviewed_on": _study_today()},
        )
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/corrections"): (
        lambda ctx: Call(
            f"{S}/participants/{ctx.baseline_done()}/surveys/baseline/corrections",
            {"item": "who5_1", "value": 5, "reason": "misheard on the phone"},
        )
    ),
    ("GET", "/api/v1/studies/{slug}/schedule"): lambda ctx: Call(f"{S}/schedule"),
    ("GET", "/api/v1/studies/{slug}/alerts"): lambda ctx: Call(f"{S}/alerts"),
    ("POST", "/api/v1/studies/{slug}/alerts/{alert_id}/acknowledge"): lambda ctx: Call(
        f"{S}/alerts/{ctx.alert()}/acknowledge",
        {"outcome": "no_event", "note": "called the participant"},
    ),
    ("GET", "/api/v1/studies/{slug}/messages"): lambda ctx: Call(f"{S}/messages"),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/events"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/events", ADVERSE_EVENT
    ),
    ("GET", "/api/v1/studies/{slug}/events"): lambda ctx: Call(f"{S}/events"),
    ("GET", "/api/v1/studies/{slug}/events/{event_id}"): lambda ctx: Call(
        f"{S}/events/{ctx.adverse_event()}"
    ),
    ("POST", "/api/v1/studies/{slug}/events/{event_id}/versions"): lambda ctx: Call(
        f"{S}/events/{ctx.adverse_event()}/versions", {"note": "called the hospital"}
    ),
    ("POST", "/api/v1/studies/{slug}/events/{event_id}/deadlines/{code}/report"): lambda ctx: Call(
        f"{S}/events/{ctx.adverse_event()}/deadlines/irb_sae/report",
        {
            "reported_on": datetime.now(ZoneInfo("America/New_York")).date().isoformat(),
            "reference": "IRB-1",
        },
    ),
    ("GET", "/api/v1/studies/{slug}/safety/due"): lambda ctx: Call(f"{S}/safety/due"),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/deviations"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/deviations", _deviation_body()
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/contacts"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/contacts", {"method": "phone", "outcome": "reached"}
    ),
    ("GET", "/api/v1/studies/{slug}/participants/{code}/contacts"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/contacts"
    ),
    ("PUT", "/api/v1/studies/{slug}/participants/{code}/contact"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/contact", {"phone": "215-898-5000"}
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/alternate-contacts"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/alternate-contacts",
        ALTERNATE_CONTACT | {"permission_on": _study_today()},
    ),
    ("GET", "/api/v1/studies/{slug}/participants/{code}/alternate-contacts"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/alternate-contacts"
    ),
    (
        "POST",
        "/api/v1/studies/{slug}/participants/{code}/alternate-contacts/{contact_id}/remove",
    ): lambda ctx: Call(f"{ctx.alternate_contact()}/remove"),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/surveys/{timepoint}/missed-reason"): (
        lambda ctx: Call(
            f"{S}/participants/{ctx.enrolled()}/surveys/baseline/missed-reason",
            {"reason": "unreachable"},
        )
    ),
    ("GET", "/api/v1/studies/{slug}/calls"): lambda ctx: Call(f"{S}/calls"),
    ("GET", "/api/v1/studies/{slug}/deviations"): lambda ctx: Call(f"{S}/deviations"),
    ("GET", "/api/v1/studies/{slug}/deviations/{deviation_id}"): lambda ctx: Call(
        f"{S}/deviations/{ctx.deviation()}"
    ),
    ("POST", "/api/v1/studies/{slug}/deviations/{deviation_id}/versions"): lambda ctx: Call(
        f"{S}/deviations/{ctx.deviation()}/versions", {"note": "the PI was told"}
    ),
    ("POST", "/api/v1/studies/{slug}/deviations/propose"): lambda ctx: Call(
        f"{S}/deviations/propose"
    ),
    ("GET", "/api/v1/studies/{slug}/incentives"): lambda ctx: Call(f"{S}/incentives"),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/approve"): lambda ctx: Call(
        f"{S}/incentives/{ctx.incentive()}/approve"
    ),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/hold"): lambda ctx: Call(
        f"{S}/incentives/{ctx.incentive()}/hold", {"reason": "two surveys a minute apart"}
    ),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/void"): lambda ctx: Call(
        f"{S}/incentives/{ctx.incentive('hold')}/void", {"reason": "a duplicate person"}
    ),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/redeem"): lambda ctx: Call(
        f"{S}/incentives/{ctx.incentive('approve', 'issue')}/redeem"
    ),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/issue"): lambda ctx: Call(
        f"{S}/incentives/{ctx.issuable()}/issue"
    ),
    ("POST", "/api/v1/studies/{slug}/incentives/{entry_id}/card"): lambda ctx: Call(
        f"{S}/incentives/{ctx.incentive('approve', 'issue')}/card"
    ),
    ("GET", "/api/v1/studies/{slug}/incentives/vendor-file"): lambda ctx: Call(
        f"{S}/incentives/vendor-file?issued_at={quote(ctx.vendor_file())}"
    ),
    ("GET", "/api/v1/studies/{slug}/incentives/vendor-files"): lambda ctx: Call(
        f"{S}/incentives/vendor-files"
    ),
    ("POST", "/api/v1/studies/{slug}/incentives/vendor-file"): lambda ctx: Call(
        f"{S}/incentives/vendor-file"
    ),
    ("GET", "/api/v1/studies/{slug}/incentives/totals"): lambda ctx: Call(
        f"{S}/incentives/totals?year=2026"
    ),
    ("GET", "/api/v1/studies/{slug}/incentives/reconciliation"): lambda ctx: Call(
        f"{S}/incentives/reconciliation"
    ),
    ("POST", "/api/v1/studies/{slug}/gift-cards"): lambda ctx: Call(
        f"{S}/gift-cards", csv=f"code,amount,currency\n{_unique('GC')},25,USD\n"
    ),
    ("GET", "/api/v1/studies/{slug}/gift-cards/summary"): lambda ctx: Call(
        f"{S}/gift-cards/summary"
    ),
    ("GET", "/api/v1/studies/{slug}/exports/blinded"): lambda ctx: Call(f"{S}/exports/blinded"),
    ("GET", "/api/v1/studies/{slug}/exports/codebook"): lambda ctx: Call(f"{S}/exports/codebook"),
    ("GET", "/api/v1/studies/{slug}/exports/package"): lambda ctx: Call(f"{S}/exports/package"),
    ("GET", "/api/v1/studies/{slug}/exports/participants"): lambda ctx: Call(
        f"{S}/exports/participants"
    ),
    ("GET", "/api/v1/studies/{slug}/exports/unblinded"): lambda ctx: Call(
        f"{S}/exports/unblinded?reason=role+matrix"
    ),
    ("GET", "/api/v1/studies/{slug}/exports/unblinded/engagement"): lambda ctx: Call(
        f"{S}/exports/unblinded/engagement?reason=role+matrix"
    ),
    ("POST", "/api/v1/studies/{slug}/engagement"): lambda ctx: Call(
        f"{S}/engagement", csv="event_id,participant,at,kind,count\n"
    ),
    ("GET", "/api/v1/studies/{slug}/engagement/summary"): lambda ctx: Call(
        f"{S}/engagement/summary"
    ),
    ("GET", "/api/v1/studies/{slug}/reports/consort"): lambda ctx: Call(f"{S}/reports/consort"),
    ("GET", "/api/v1/studies/{slug}/reports/retention"): lambda ctx: Call(f"{S}/reports/retention"),
    ("GET", "/api/v1/studies/{slug}/reports/dsmb"): lambda ctx: Call(
        f"{S}/reports/dsmb?part=closed&format=json"
    ),
    ("GET", "/api/v1/studies/{slug}/reports/ctgov-adverse-events"): lambda ctx: Call(
        f"{S}/reports/ctgov-adverse-events"
    ),
    ("GET", "/api/v1/studies/{slug}/reports/balance"): lambda ctx: Call(f"{S}/reports/balance"),
    ("GET", "/api/v1/studies/{slug}/applicants"): lambda ctx: Call(f"{S}/applicants"),
    ("POST", "/api/v1/studies/{slug}/applicants/{applicant_id}/accept"): lambda ctx: Call(
        f"{S}/applicants/{ctx.applicant()}/accept"
    ),
    ("POST", "/api/v1/studies/{slug}/applicants/{applicant_id}/reject"): lambda ctx: Call(
        f"{S}/applicants/{ctx.applicant()}/reject", {"reason": "a bot filled the form"}
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/verify"): lambda ctx: Call(
        f"{S}/participants/{ctx.joined()}/verify"
    ),
    ("GET", "/api/v1/studies/{slug}/participants/{code}/consents"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/consents"
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/consents"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/consents",
        {"version": "1.0", "obtained_on": "2026-01-05", "note": "re-consented on paper"},
    ),
    ("GET", "/api/v1/studies/{slug}/participants/{code}/consents/{consent_id}.pdf"): (
        lambda ctx: ctx.signed_consent(".pdf")
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/consents/{consent_id}/countersign"): (
        lambda ctx: ctx.signed_consent("/countersign")
    ),
    ("GET", "/api/v1/studies/{slug}/consents/outstanding"): lambda ctx: Call(
        f"{S}/consents/outstanding"
    ),
    ("POST", "/api/v1/studies/{slug}/consent-versions"): lambda ctx: ctx.consent_version(),
    ("GET", "/api/v1/surveys/{token}"): lambda ctx: Call(f"/api/v1/surveys/{ctx.survey()}"),
    ("PUT", "/api/v1/surveys/{token}/answers"): lambda ctx: Call(
        f"/api/v1/surveys/{ctx.survey()}/answers", {"who5_1": 2}
    ),
    ("POST", "/api/v1/surveys/{token}/submit"): lambda ctx: Call(
        f"/api/v1/surveys/{ctx.survey()}/submit", {"answers": BASELINE_ANSWERS}
    ),
    ("POST", "/api/v1/studies/{slug}/participants/{code}/unblind"): lambda ctx: Call(
        f"{S}/participants/{ctx.randomized()}/unblind", {"reason": "serious adverse event"}
    ),
    ("GET", "/api/v1/studies/{slug}/allocations"): lambda ctx: Call(f"{S}/allocations"),
    ("GET", "/api/v1/studies/{slug}/audit"): lambda ctx: Call(f"{S}/audit"),
    ("GET", "/api/v1/audit"): lambda ctx: Call("/api/v1/audit"),
    ("GET", "/api/v1/studies/{slug}/audit/head"): lambda ctx: Call(f"{S}/audit/head"),
    ("POST", "/api/v1/studies/{slug}/lock"): lambda ctx: Call(
        f"/api/v1/studies/{ctx.enrolling_study()}/lock"
    ),
    ("PUT", "/api/v1/studies/{slug}/allocation-table"): lambda ctx: Call(
        f"/api/v1/studies/{ctx.draft_study(method='table')}/allocation-table",
        csv="stratum,sequence,arm\nsite=PHL|diagnosis=bipolar,1,control\n",
    ),
    ("POST", "/api/v1/studies/{slug}/simulate"): lambda ctx: Call(
        f"{S}/simulate", {"participants": 30, "runs": 5}
    ),
    ("GET", "/s/{token}"): lambda ctx: Call(f"/s/{ctx.survey()}"),
    ("POST", "/s/{token}"): lambda ctx: ctx.survey_form(),
    ("GET", "/s/{token}/language/{code}"): lambda ctx: Call(f"/s/{ctx.survey()}/language/es"),
    ("PUT", "/api/v1/studies/{slug}/participants/{code}/texting"): lambda ctx: Call(
        f"{S}/participants/{ctx.enrolled()}/texting", {"channel": "both", "sms_consent": True}
    ),
    ("GET", "/api/v1/studies/{slug}/sms/replies"): lambda ctx: Call(f"{S}/sms/replies"),
    ("POST", "/api/v1/studies/{slug}/sms/replies/{reply_id}/handle"): lambda ctx: Call(
        f"{S}/sms/replies/{ctx.sms_reply()}/handle", {"note": "called back"}
    ),
    ("POST", "/api/v1/sms/status"): lambda ctx: Call(
        "/api/v1/sms/status", form={"MessageSid": "SM1", "MessageStatus": "delivered"}
    ),
    ("POST", "/api/v1/sms/inbound"): lambda ctx: Call(
        "/api/v1/sms/inbound", form={"MessageSid": "SM2", "From": "+12155550100", "Body": "hi"}
    ),
    ("GET", "/healthz"): lambda ctx: Call("/healthz"),
    ("GET", "/readyz"): lambda ctx: Call("/readyz"),
    ("GET", "/metrics"): lambda ctx: Call("/metrics"),
}

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _template_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def _cases() -> Iterator[Any]:
    for route in EXPECTED:
        method, path = route
        deviant = [c for c in CALLERS if (method, path, c) in KNOWN_DEVIATIONS]
        callers = tuple(c for c in CALLERS if c not in deviant)
        yield pytest.param(route, callers, id=f"{method} {path}")
        for caller in deviant:
            yield pytest.param(
                route,
                (caller,),
                id=f"{method} {path} [{caller}]",
                marks=pytest.mark.xfail(strict=True, reason=KNOWN_DEVIATIONS[(*route, caller)]),
            )


def test_matrix_is_complete() -> None:
    """Every entry names every caller, and every entry says how to make its call."""
    for route, statuses in EXPECTED.items():
        assert tuple(statuses) == CALLERS, route
    assert set(REQUESTS) == set(EXPECTED)
    for method, path, caller in KNOWN_DEVIATIONS:
        assert (method, path) in EXPECTED and caller in CALLERS


def test_matrix_covers_every_route(client) -> None:
    paths = client.app.openapi()["paths"]
    routes = {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method in HTTP_METHODS
    }
    missing = sorted(routes - set(EXPECTED))
    stale = sorted(set(EXPECTED) - routes)
    assert not missing, f"routes without a role-matrix entry: {missing}"
    assert not stale, f"role-matrix entries for routes that do not exist: {stale}"


@pytest.mark.parametrize(("route", "callers"), list(_cases()))
def test_role_matrix(api: Api, route: tuple[str, str], callers: tuple[str, ...]) -> None:
    method, path = route
    ctx = Ctx.make(api)
    pattern = _template_regex(path)
    mismatches = []
    for caller in callers:
        call = REQUESTS[route](ctx)
        assert pattern.match(call.url.split("?")[0]), f"{call.url} is not a {path}"
        headers = ctx.headers(caller)
        if method == "POST":  # so a route that forgets to store its answer fails here
            headers["Idempotency-Key"] = uuid.uuid4().hex
        if call.csv is not None:
            headers = {**headers, "content-type": "text/csv"}
        response = api.client.request(
            method, call.url, json=call.json, content=call.csv, data=call.form, headers=headers
        )
        expected = EXPECTED[route][caller]
        if response.status_code != expected:
            mismatches.append(
                f"{caller}: expected {expected}, got {response.status_code}: {response.text[:300]}"
            )
    assert not mismatches, f"{method} {path}\n" + "\n".join(mismatches)


def test_filtering_participants_by_a_site_not_ones_own_is_forbidden(api: Api) -> None:
    """API.md: "a coordinator filtering by a site not theirs" gets 403."""
    expected = {
        "anonymous": 401,
        "bad_token": 401,
        "admin": 200,
        "coordinator": 200,
        "other_coordinator": 403,
        "statistician": 403,
        "unblinded_statistician": 403,
    }
    ctx = Ctx.make(api)
    code = ctx.enrolled()
    got = {}
    for caller in CALLERS:
        response = api.client.get(f"{S}/participants?site=PHL", headers=ctx.headers(caller))
        got[caller] = response.status_code
        if caller in ("admin", "coordinator"):
            assert code in [p["code"] for p in response.json()["items"]]
    assert got == expected
