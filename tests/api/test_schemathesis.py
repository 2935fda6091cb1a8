"""No input gives a 500, every answer matches the OpenAPI document, and every status is
one the document declares: schemathesis, from the app's own OpenAPI document, each
operation with a bounded number of generated requests (fixed: derandomized), each sent
once per role."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.demo import load_demo
from app.main import create_app
from tests.helpers import STUDY, Api, bearer

ROLES = ("anonymous", "admin", "coordinator", "statistician", "unblinded_statistician")
EXAMPLES = 15  # per operation: the suite's time budget
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}

# The operations, from the document of an app (describing itself needs no database).
_DOCUMENT = create_app(
    Settings(database_url=f"sqlite:///{tempfile.mkdtemp()}/openapi.db", secret_key="x" * 32)
).openapi()
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in _DOCUMENT["paths"].items()
    for method in item
    if method in HTTP_METHODS
)


@pytest.fixture(scope="module")
def world(sqlite_template, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """One app on its own SQLite file: the demo study, a participant, a user per role,
    and a user whose id the generated requests that take a user id act upon."""
    path = tmp_path_factory.mktemp("schemathesis") / "trialdesk.db"
    shutil.copyfile(sqlite_template, path)
    app = create_app(Settings(database_url=f"sqlite:///{path}", base_url="http://testserver"))
    with TestClient(app) as client:
        with app.state.db.begin() as session:
            api = Api(client, admin_token=load_demo(session).token)
        tokens = {
            "admin": api.admin_token,
            "coordinator": api.user("coordinator", "PHL"),
            "statistician": api.user("statistician"),
            "unblinded_statistician": api.user("unblinded_statistician"),
        }
        target = client.post(
            "/api/v1/users",
            json={"email": "target@example.org", "name": "Target", "role": "statistician"},
            headers=bearer(api.admin_token),
        ).json()["id"]
        code = api.enroll(api.admin_token)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        generated = {"count": 0}

        @schema.hook
        def map_path_parameters(
            context: Any, path_parameters: dict[str, Any] | None
        ) -> dict[str, Any] | None:
            # Aim at what exists half of the time, so that requests get past the 404s,
            # and never at the accounts of the callers themselves.
            if path_parameters is None:
                return None
            mapped = dict(path_parameters)
            generated["count"] += 1
            if generated["count"] % 2:
                for name, value in {"slug": STUDY, "code": code}.items():
                    if name in mapped:
                        mapped[name] = value
            if "user_id" in mapped:
                mapped["user_id"] = target
            return mapped

        yield {"schema": schema, "tokens": tokens}


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_input_gives_a_server_error_or_an_undocumented_answer(world, method, path):
    operation = world["schema"][path][method]
    headers = {role: bearer(token) for role, token in world["tokens"].items()}
    headers["anonymous"] = {}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def each_request(case: Any) -> None:
        for role in ROLES:  # each generated request, sent once as every kind of caller
            case.call_and_validate(headers=headers[role], checks=CHECKS)

    each_request()
