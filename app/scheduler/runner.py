"""A scheduler pass, and the loop that runs one every interval (inside the server, or
as `trialdesk scheduler run`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.db.base import utcnow
from app.db.engine import Database
from app.safety import deviations
from app.scheduler import planner
from app.scheduler.dispatch import dispatch
from app.scheduler.mail import transport_for
from app.studies.models import Study

log = logging.getLogger("trialdesk.scheduler")


@dataclass(frozen=True)
class PassReport:
    enqueued: int
    sent: int
    failed: int
    skipped: int
    proposed: int = 0  # protocol deviations proposed (surveys done after their window)


def run_pass(
    db: Database, *, now: datetime | None = None, stop: threading.Event | None = None
) -> PassReport:
    """Enqueue what surveys are owed at `now` (default: the clock), then send what is
    due, then propose protocol deviations (surveys done after their window). Safe to
    run in any number of processes at once."""
    at = now or utcnow()
    enqueued = 0
    with db.session(write=False) as session:
        study_ids = list(session.scalars(select(Study.id).order_by(Study.id)))
    for study_id in study_ids:
        while stop is None or not stop.is_set():
            with db.session(write=False) as session:
                study = session.get_one(Study, study_id)
                rows = planner.owed_surveys(session, study=study, now=at, limit=planner.BATCH)
            if not rows:
                break
            with db.begin() as session:
                study = session.get_one(Study, study_id)
                enqueued += planner.enqueue(session, study=study, now=at, rows=rows)
            if len(rows) < planner.BATCH:
                break
    sent = dispatch(db, transport_for(db.settings), now=at, stop=stop)
    # After the messages (a serious event's notification goes first); a study whose
    # finder fails is logged and tried again at the next pass, the others go on.
    proposed = 0
    for study_id in study_ids:
        if stop is not None and stop.is_set():
            break
        try:
            proposed += _propose_deviations(db, study_id=study_id, now=at)
        except Exception:
            log.exception("proposing protocol deviations failed", extra={"study": study_id})
    report = PassReport(enqueued, sent.sent, sent.failed, sent.skipped, proposed)
    if enqueued or sent.sent or sent.failed or proposed:
        log.info(
            "scheduler pass",
            extra={
                "enqueued": enqueued,
                "sent": sent.sent,
                "failed": sent.failed,
                "proposed": proposed,
            },
        )
    return report


def _propose_deviations(db: Database, *, study_id: int, now: datetime) -> int:
    """Propose the study's new protocol deviations. Found in a read first: the write
    transaction (SQLite's write lock) is taken only when there is something to propose."""
    with db.session(write=False) as session:
        study = session.get_one(Study, study_id)
        if not deviations.find_late_surveys(session, study=study, now=now):
            return 0
    with db.begin() as session:
        study = session.get_one(Study, study_id)
        return deviations.propose_deviations(session, study=study, now=now)


def run_forever(
    db: Database, *, interval_s: float, stop: threading.Event, wake: threading.Event | None = None
) -> None:
    """A pass every `interval_s` seconds (or as soon as `wake` is set) until `stop` is
    set; a failed pass is logged and the next one runs as planned."""
    while not stop.is_set():
        if wake is not None:
            wake.clear()  # before the pass: a message queued during it is sent by the next
        try:
            run_pass(db, stop=stop)
        except Exception:
            log.exception("scheduler pass failed")
        (wake or stop).wait(interval_s)


class BackgroundScheduler:
    """The scheduler in a thread of the server process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.stop = threading.Event()
        self.wake = threading.Event()  # a message to send now (a sign-in link)
        self.thread = threading.Thread(
            target=run_forever,
            kwargs={
                "db": db,
                "interval_s": db.settings.scheduler_interval_s,
                "stop": self.stop,
                "wake": self.wake,
            },
            name="trialdesk-scheduler",
            daemon=True,
        )

    def start(self) -> None:
        self.thread.start()

    def shutdown(self) -> None:
        """Stop after the message being sent (at most one SMTP timeout)."""
        self.stop.set()
        self.wake.set()
        self.thread.join(timeout=self.db.settings.smtp_timeout_s + 5)
