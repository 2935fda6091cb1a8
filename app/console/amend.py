"""Amendments from the console (SPEC 10): an admin adds a consent version to an
enrolling study by pasting the document (YAML or JSON) on the study's set-up page.

The text is read by the reader study definition files go through (bounded, no alias
bombs), checked against the API's schema for a consent document, then handed to the
amendment service the API calls (`consent_admin.amendments.amend`), which re-validates
the whole definition. Every problem is listed by its path in the document, as the API
names it; nothing is stored when there is one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Response

from app.api.deps import SessionDep
from app.api.params import SlugPath
from app.audit import service as audit
from app.auth.permissions import Permission
from app.consent_admin import amendments
from app.console.deps import CheckedForm, Staff, console_router, needs, send_soon
from app.console.forms import FormRefused, sentence, validated
from app.console.studies import _setup_page, _to_setup
from app.errors import FieldProblem, InvalidInput, InvalidStudyDefinition
from app.studies import service as studies
from app.studies.definition import ConsentDocument
from app.studies.documents import read_definition_document
from app.web.forms import first

MAX_DOCUMENT_BYTES = 200 * 1024
# Percent-encoding makes a byte at most three characters; the rest is the form's token.
AMEND_BODY_LIMIT = 3 * MAX_DOCUMENT_BYTES + 4096
MAX_PROBLEMS_SHOWN = 100

router = console_router()

StudyAdmin = Annotated[Staff, needs(Permission.manage_studies)]


def _read(text: str) -> object:
    """The document of the pasted text, or InvalidInput with one problem at its root."""
    content = text.encode("utf-8", "surrogatepass")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            [FieldProblem((), f"paste a document of {MAX_DOCUMENT_BYTES // 1024} KB or less")]
        )
    if not text.strip():
        raise InvalidInput([FieldProblem((), "paste the consent document (YAML or JSON)")])
    name = "document.json" if text.lstrip().startswith("{") else "document.yaml"
    try:
        return read_definition_document(name, content)
    except InvalidStudyDefinition as invalid:
        words = [p.msg.replace("The file", "The text") for p in invalid.problems]
        raise InvalidInput([FieldProblem((), w) for w in words]) from None


@router.post("/studies/{slug}/setup/consent-versions", max_body_size=AMEND_BODY_LIMIT)
def add_consent_version(
    request: Request, slug: SlugPath, session: SessionDep, staff: StudyAdmin, form: CheckedForm
) -> Response:
    """Add the pasted consent version; everyone taking part is invited to re-consent."""
    study = studies.get_study(session, slug=slug, user=staff.user, lock=studies.RowLock.for_update)
    pasted = first(form, "document")
    try:
        document = validated(ConsentDocument, _read(pasted))
        now = audit.lock_chain_head(session).at
        amendments.amend(session, study=study, document=document, actor=staff.user, now=now)
    except InvalidInput as invalid:
        problems = [
            (".".join(str(part) for part in p.loc), sentence(p.msg)) for p in invalid.problems
        ]
        shown = {
            "text": pasted[: MAX_DOCUMENT_BYTES + 1],
            "problems": problems[:MAX_PROBLEMS_SHOWN],
            "more": max(0, len(problems) - MAX_PROBLEMS_SHOWN),
        }
        page = _setup_page(
            request, session, staff, study, status_code=422, extra={"amendment": shown}
        )
        raise FormRefused(page) from None
    return send_soon(request, _to_setup(study, "amended"))
