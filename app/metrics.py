"""What `/metrics` counts (Prometheus), kept apart from where it is counted.

Each process keeps its own counters (with `trialdesk serve --workers N`, a scrape
reaches one worker: run one worker per port, or one process per host, to see them all).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "trialdesk_http_requests",
    "HTTP requests answered, by route template and status (4xx, 5xx: status=~'4..|5..')",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "trialdesk_http_request_duration_seconds",
    "Time from the request's start to the end of its answer",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS = Counter(
    "trialdesk_events",
    "Changes committed, by audit action: participant.enrolled (enrollments), "
    "participant.randomized (randomizations), participant.screened, ...",
    ["action"],
)
WAITS = Histogram(
    "trialdesk_wait_seconds",
    "Time waited before the work could go on: for a request slot, for SQLite's write gate, "
    "for the audit chain's head (the lock every write takes)",
    ["what"],
    buckets=LATENCY_BUCKETS,
)

# Audit actions of a transaction, counted only once it commits (see db.engine).
PENDING_EVENTS = "trialdesk_pending_events"
