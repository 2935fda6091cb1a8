"""Operations: Prometheus metrics, and a request id in every log line and audit record."""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.helpers import STUDY, bearer, enrollment

PARTICIPANTS = f"/api/v1/studies/{STUDY}/participants"


def _metrics(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_route_events_at_commit_and_waits(settings, api):
    app = create_app(settings.model_copy(update={"metrics_allowed_from": ["*"]}))
    with TestClient(app) as client:
        before = _metrics(client)
        token = bearer(api.admin_token)
        enrolled = client.post(PARTICIPANTS, json=enrollment(), headers=token)
        assert enrolled.status_code == 201
        assert client.post(PARTICIPANTS, json={}, headers=token).status_code == 422
        after = _metrics(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    route = "/api/v1/studies/{slug}/participants"
    assert grew("trialdesk_http_requests_total", method="POST", route=route, status="201") == 1
    assert grew("trialdesk_http_requests_total", method="POST", route=route, status="422") == 1
    assert grew("trialdesk_events_total", action="participant.enrolled") == 1
    assert grew("trialdesk_wait_seconds_count", what="audit_chain_head") >= 1
    assert grew("trialdesk_http_request_duration_seconds_count", method="POST", route=route) == 2


def test_metrics_are_refused_to_addresses_not_allowed(client):
    assert client.get("/metrics").status_code == 404


def test_a_request_id_is_answered_logged_and_in_the_audit_record(api):
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.getLogger("trialdesk").handlers[0].formatter)
    logging.getLogger("trialdesk").addHandler(handler)
    try:
        given = api.client.post(
            PARTICIPANTS,
            json=enrollment(),
            headers={**bearer(api.admin_token), "X-Request-ID": "trace-42.a"},
        )
        made = api.client.get(
            PARTICIPANTS, headers={**bearer(api.admin_token), "X-Request-ID": "x y"}
        )
    finally:
        logging.getLogger("trialdesk").removeHandler(handler)
    assert given.headers["x-request-id"] == "trace-42.a"
    assert made.headers["x-request-id"] != "x y" and len(made.headers["x-request-id"]) == 32
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert any(line.get("request_id") == "trace-42.a" for line in lines)
    trail = api.client.get(f"/api/v1/studies/{STUDY}/audit", headers=bearer(api.admin_token))
    mine = [r for r in trail.json()["items"] if r["request_id"] == "trace-42.a"]
    assert {r["action"] for r in mine} == {"participant.screened", "participant.enrolled"}


def test_made_up_methods_share_one_metrics_label(settings):
    # Any word is an HTTP method; a label per made-up one would grow /metrics unbounded.
    app = create_app(settings.model_copy(update={"metrics_allowed_from": ["*"]}))
    with TestClient(app) as client:
        for method in ("M12345", "A" * 300):
            assert client.request(method, "/healthz").status_code in (404, 405)
        text = client.get("/metrics").text
    assert 'method="M12345"' not in text and "A" * 300 not in text
    assert 'method="other"' in text
