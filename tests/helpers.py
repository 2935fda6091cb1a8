"""Helpers that speak to the API the way a client does."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

STUDY = "peer-support"
ELIGIBLE = {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True}
# The demo baseline (WHO-5 and PHQ-9) answered in full, raising no safety alert.
BASELINE_ANSWERS: dict[str, Any] = (
    {f"who5_{i}": 3 for i in range(1, 6)} | {f"phq9_{i}": 1 for i in range(1, 10)} | {"phq9_9": 0}
)


@cache
def _demo_zone() -> ZoneInfo:
    from app.demo import demo_definition

    return ZoneInfo(demo_definition()["timezone"])


def study_today(now: datetime | None = None) -> date:
    """Today in the demo study's time zone (America/New_York), the day the application
    means by "today": never `date.today()`, which is the machine's (UTC) day and is
    already tomorrow in New York between midnight UTC and 04:00/05:00 UTC. Asked at each
    use, not kept in a module constant, so a run that crosses midnight stays right."""
    return (now or datetime.now(UTC)).astimezone(_demo_zone()).date()


def study_noon(days: int) -> datetime:
    """Noon in the demo study's zone, `days` days after its today (as a UTC moment): a
    clock for the scheduler that lands on the study date meant at any hour the test
    runs, where `utcnow() + timedelta(days=days)` lands on the next date when it is
    late evening in New York and the days cross a change to or from daylight time."""
    day = study_today() + timedelta(days=days)
    return datetime.combine(day, time(12), tzinfo=_demo_zone()).astimezone(UTC)


def english_only(document: dict[str, Any]) -> dict[str, Any]:
    """The study definition in English alone (languages ["en"], no translations, its
    consent documents' texts reduced to English), changed in place and returned: for tests
    that add texts to the demo study and are not about languages, which would otherwise
    have to translate each new text into every language the demo lists."""
    document["languages"] = ["en"]
    document.pop("translations", None)
    for consent_document in (document.get("consent") or {}).get("documents", []):
        consent_document["texts"] = {"en": consent_document["texts"]["en"]}
    return document


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enrollment(
    site: str = "PHL", diagnosis: str = "bipolar", *, name: str = "Pat Doe", **overrides: Any
) -> dict[str, Any]:
    """A valid enrollment body for the demo study."""
    body: dict[str, Any] = {
        "site": site,
        "screening": dict(ELIGIBLE),
        "consent": {"version": "1.0"},
        "strata": {"diagnosis": diagnosis},
        "contact": {"name": name, "email": "pat@example.org", "phone": "215-555-0100"},
    }
    body.update(overrides)
    return body


class Api:
    """A client of the demo study with an admin token; makes users and participants."""

    def __init__(self, client: TestClient | httpx.Client, *, admin_token: str) -> None:
        self.client = client
        self.admin_token = admin_token

    def user(self, role: str, *sites: str, study: str = STUDY, email: str | None = None) -> str:
        """Create a user of the role (coordinator: of the given sites); return its token."""
        import uuid

        body = {
            "email": email or f"{role}-{uuid.uuid4().hex[:8]}@example.org",
            "name": role.title(),
            "role": role,
            "sites": [{"study": study, "site": s} for s in sites],
        }
        response = self.client.post("/api/v1/users", json=body, headers=bearer(self.admin_token))
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def enroll(self, token: str, study: str = STUDY, **kwargs: Any) -> str:
        """Enroll an eligible participant; return the code."""
        response = self.client.post(
            f"/api/v1/studies/{study}/participants",
            json=enrollment(**kwargs),
            headers=bearer(token),
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "enrolled"
        return response.json()["code"]

    def randomize(
        self, token: str, code: str, study: str = STUDY, *, complete_baseline: bool = True
    ) -> httpx.Response:
        """Randomize the participant; first complete its baseline survey (the demo study
        requires it), unless told not to."""
        if complete_baseline and self.survey_status(code, study=study) == "open":
            self.complete_survey(code, study=study)
        return self.client.post(
            f"/api/v1/studies/{study}/participants/{code}/randomize", headers=bearer(token)
        )

    def survey_line(
        self, code: str, *, study: str = STUDY, timepoint: str = "baseline"
    ) -> dict[str, Any]:
        """The participant's survey at the timepoint, as the admin reads it ({} if none)."""
        shown = self.client.get(
            f"/api/v1/studies/{study}/participants/{code}", headers=bearer(self.admin_token)
        )
        assert shown.status_code == 200, shown.text
        line: dict[str, Any] = next(
            (s for s in shown.json()["surveys"] if s["timepoint"] == timepoint), {}
        )
        return line

    def survey_status(self, code: str, *, study: str = STUDY, timepoint: str = "baseline") -> str:
        return str(self.survey_line(code, study=study, timepoint=timepoint).get("status"))

    def survey_token(self, code: str, *, study: str = STUDY, timepoint: str = "baseline") -> str:
        """The token of the participant's open survey at the timepoint (read by the admin)."""
        line = self.survey_line(code, study=study, timepoint=timepoint)
        assert line.get("link"), f"the {timepoint} survey of {code} is {line.get('status')}"
        return str(line["link"]).rsplit("/", 1)[1]

    def complete_survey(
        self,
        code: str,
        *,
        study: str = STUDY,
        timepoint: str = "baseline",
        answers: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Submit the participant's survey with `answers` (default: the baseline's WHO-5
        and PHQ-9, every item answered, no safety alert)."""
        token = self.survey_token(code, study=study, timepoint=timepoint)
        given = BASELINE_ANSWERS if answers is None else answers
        done = self.client.post(f"/api/v1/surveys/{token}/submit", json={"answers": given})
        assert done.status_code == 200, done.text
        return done


async def complete_baseline(client: httpx.AsyncClient, base: str, token: str, code: str) -> int:
    """Submit the participant's baseline (as a client of a live server does: the link
    read by staff, then the answers sent to it); the status of the submission."""
    shown = await client.get(
        f"{base}/api/v1/studies/{STUDY}/participants/{code}", headers=bearer(token)
    )
    if shown.status_code != 200:
        return shown.status_code
    link = next(s["link"] for s in shown.json()["surveys"] if s["timepoint"] == "baseline")
    survey = link.rsplit("/", 1)[1]
    done = await client.post(
        f"{base}/api/v1/surveys/{survey}/submit", json={"answers": BASELINE_ANSWERS}
    )
    return done.status_code
