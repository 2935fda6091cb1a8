"""Helpers that speak to the API the way a client does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

STUDY = "peer-support"
ELIGIBLE = {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True}


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
        "contact": {"name": name, "email": "pat@example.org", "phone": "555-0100"},
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

    def randomize(self, token: str, code: str, study: str = STUDY) -> httpx.Response:
        return self.client.post(
            f"/api/v1/studies/{study}/participants/{code}/randomize", headers=bearer(token)
        )
