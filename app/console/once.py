"""A console form that changes something is acted on once, however often it is sent (a
double click the page's script missed, a reload of the answer, two servers behind a
balancer): each form carries a `form_id` made when the page was drawn, claimed as an
idempotency key of the user in the request's own transaction. A second send waits for
the first (the study's row it locks, then the claim's unique key) and then finds what
the first stored: the action's outcome, from which the page answers it again.

The same as enrollment's (`app.console.enroll`), for forms whose answer is a page or a
download rather than one redirect: the stored text is the caller's to choose and read.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.errors import Conflict, IdempotencyKeyInProgress, IdempotencyKeyReused
from app.idempotency import service as idempotency
from app.idempotency.service import StoredResponse
from app.web.forms import Form, first

FORM_TTL = timedelta(hours=24)
FIELD = "form_id"
MAX_ID = 64


def new_form_id() -> str:
    """A fresh id for one form on a page (the page calls it once per form)."""
    return secrets.token_urlsafe(16)


def claim(session: Session, *, user_id: int, form: Form, path: str) -> int | StoredResponse:
    """Claim this copy of the form (its claim's id), or what its first send stored. A
    form without an id (a page from before ids, a hand-made request) is acted on as
    new; the same id sent again with other answers is refused, not taken for the first."""
    form_id = first(form, FIELD)[:MAX_ID] or new_form_id()
    content = json.dumps(
        sorted((k, v) for k, v in form.items() if k != "csrf_token"), ensure_ascii=False
    ).encode()
    fingerprint = idempotency.fingerprint(method="POST", path=path, body=content)
    for _ in range(2):
        try:
            return idempotency.claim(
                session,
                scope=f"console:{user_id}",
                key=form_id,
                fingerprint=fingerprint,
                now=utcnow(),
                ttl=FORM_TTL,
            )
        except IdempotencyKeyReused:
            raise Conflict(
                "this form was already sent, with other answers: open the page again"
            ) from None
        except IdempotencyKeyInProgress:
            continue  # the first send committed meanwhile: its answer is there now
    raise IdempotencyKeyInProgress("this form is being sent; open the page again")


def done(session: Session, claim_id: int, outcome: str) -> None:
    """Store the action's outcome for a second send of the form (in the request's
    transaction: it commits with the action). Never a secret: it is kept a day."""
    stored = StoredResponse(200, outcome, "text/plain")
    idempotency.complete(session, claim_id=claim_id, response=stored, now=utcnow())
