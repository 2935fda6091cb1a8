"""Study administration: a new draft study from its definition file (read by the one
reader the CLI uses, `studies.documents`), and a study's set-up: sites, simulation,
activation, lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import SlugPath
from app.auth.permissions import Permission
from app.console.deps import (
    PREFIX,
    CheckedForm,
    FormExpired,
    Staff,
    console_key,
    console_router,
    needs,
    same_origin,
    study_view,
    view,
)
from app.console.forms import FormRefused, field_errors, sentence, text, validated
from app.errors import (
    FieldProblem,
    InvalidInput,
    InvalidStudyDefinition,
    SiteCodeTaken,
    StudySlugTaken,
    TooManyStrata,
)
from app.randomization.simulation import SimulationResult
from app.studies import service as studies
from app.studies.documents import MAX_DEFINITION_BYTES, read_definition_document
from app.studies.models import Study
from app.studies.schemas import SimulationRequest, SiteCreate
from app.studies.validation import MAX_SITE_CODE, parse_definition
from app.web.forms import csrf_ok, first

# The file, the form's token and the multipart framing; a larger body is refused (413)
# before it is read, a file above MAX_DEFINITION_BYTES within it gets the form again.
UPLOAD_BODY_LIMIT = 2 * MAX_DEFINITION_BYTES
MAX_FIELD_BYTES = 1024  # the upload form's only text field is its csrf_token
MAX_PROBLEMS_SHOWN = 100

router = console_router()

StudyAdmin = Annotated[Staff, needs(Permission.manage_studies)]
Done = Annotated[str | None, Query(max_length=20)]

_DONE = {
    "created": "The study is created as a draft.",
    "site_added": "The site is added.",
    "activated": "The study is enrolling. Its commitment is published below.",
    "locked": "The study is locked. Its secret is revealed below.",
    "amended": "The consent version is added. Everyone taking part is invited to re-consent.",
}


@dataclass(frozen=True)
class Upload:
    """The definition file of a posted form, read within bounds; or why it cannot be."""

    file_name: str
    content: bytes
    problem: str | None


def _check_token(request: Request, staff: Staff, given: str) -> None:
    # `CheckedForm` reads forms without files; this one has a file, so its token is
    # checked here, the same way.
    bound_to = f"session:{staff.signed_in.session_id}"
    if not same_origin(request) or not csrf_ok(
        console_key(request), bound_to=bound_to, given=given
    ):
        raise FormExpired()


async def read_upload(request: Request, staff: StudyAdmin) -> Upload:
    """The one file of the form (its csrf_token checked first); at most one byte more
    than the reader takes is read; other files or other fields are refused."""
    async with request.form(max_files=1, max_fields=10, max_part_size=MAX_FIELD_BYTES) as form:
        fields: dict[str, list[str]] = {}
        files: list[tuple[str, UploadFile]] = []
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(name, []).append(value)
            else:
                files.append((name, value))
        _check_token(request, staff, first(fields, "csrf_token"))
        # A file input left empty may come as a field with no value (or a nameless file).
        if fields.get("definition") == [""] and not files:
            del fields["definition"]
        if set(fields) - {"csrf_token"} or len(fields.get("csrf_token", [])) != 1:
            return Upload("", b"", "Send the definition file alone, from this page")
        if not files or not files[0][1].filename:
            return Upload("", b"", "Choose a study definition file (YAML or JSON)")
        name, file = files[0]
        file_name = (file.filename or "")[:200]
        if name != "definition":
            return Upload(file_name, b"", "Send the definition file alone, from this page")
        content = await file.read(MAX_DEFINITION_BYTES + 1)
    return Upload(file_name, content, None)


DefinitionUpload = Annotated[Upload, Depends(read_upload)]


def _new_study_form(
    request: Request,
    *,
    file_name: str = "",
    problems: Sequence[tuple[str, str]] = (),
    status_code: int = 200,
) -> Response:
    context = {
        "file_name": file_name,
        "problems": list(problems[:MAX_PROBLEMS_SHOWN]),
        "more": max(0, len(problems) - MAX_PROBLEMS_SHOWN),
        "max_mb": MAX_DEFINITION_BYTES // (1024 * 1024),
    }
    return view(request, "console/admin_study_new.html", context, status_code=status_code)


@router.get("/admin/studies/new")
def new_study_page(request: Request, staff: StudyAdmin) -> Response:
    """The form that creates a draft study from a definition file."""
    return _new_study_form(request)


@router.post("/admin/studies", max_body_size=UPLOAD_BODY_LIMIT)
def create_study(
    request: Request, staff: StudyAdmin, upload: DefinitionUpload, session: SessionDep
) -> Response:
    """Create a draft study from the file; every problem is listed by its path in the
    document (422, nothing stored)."""
    try:
        if upload.problem:
            raise InvalidStudyDefinition([FieldProblem((), upload.problem)])
        document = read_definition_document(upload.file_name, upload.content)
        definition = parse_definition(document)
        study = studies.create_study(session, definition=definition, actor=staff.user)
    except InvalidStudyDefinition as invalid:
        problems = [(".".join(map(str, p.loc)), p.msg) for p in invalid.problems]
    except StudySlugTaken as taken:
        problems = [("slug", sentence(taken.detail))]
    else:
        return RedirectResponse(f"{PREFIX}/studies/{study.slug}/setup?done=created", 303)
    page = _new_study_form(request, file_name=upload.file_name, problems=problems, status_code=422)
    raise FormRefused(page)


def _setup_page(
    request: Request,
    session: Session,
    staff: Staff,
    study: Study,
    *,
    done: str | None = None,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    simulation: SimulationResult | None = None,
    status_code: int = 200,
    extra: Mapping[str, object] | None = None,
) -> Response:
    definition = studies.definition_of(study)
    described = studies.describe(session, study=study, user=staff.user)
    context = {
        "zone": definition.zone(),
        "sites": sorted(study.sites, key=lambda s: s.code),
        "secret": described.secret.hex() if described.secret is not None else None,
        "uses_table": definition.randomization.method == "table",
        "values": {"participants": "300", "runs": "200", "seed": "", **(values or {})},
        "errors": errors or {},
        "simulation": simulation,
        "notice": _DONE.get(done or ""),
        "amendment": {"text": "", "problems": []},  # console.amend's form
        **(extra or {}),
    }
    return study_view(
        request, staff, study, "console/admin_setup.html", context, status_code=status_code
    )


@router.get("/studies/{slug}/setup")
def setup_page(
    request: Request, slug: SlugPath, session: ReadSessionDep, staff: StudyAdmin, done: Done = None
) -> Response:
    """The study's status and sites; a draft's simulation and activation, an enrolling
    study's commitment and lock."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    return _setup_page(request, session, staff, study, done=done)


def _to_setup(study: Study, done: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/studies/{study.slug}/setup?done={done}", status_code=303)


_SITE_MESSAGES = {
    "code": f"Enter a site code of 1 to {MAX_SITE_CODE} letters or digits, like PHL",
    "name": "Enter the site's name (up to 200 characters)",
}


@router.post("/studies/{slug}/setup/sites")
def add_site(
    request: Request, slug: SlugPath, session: SessionDep, staff: StudyAdmin, form: CheckedForm
) -> Response:
    """Add a site (its code unique within the study)."""
    study = studies.get_study(
        session, slug=slug, user=staff.user, lock=studies.RowLock.for_no_key_update
    )
    code, name = text(form, "code", 50), text(form, "name", 250)
    try:
        validated(SiteCreate, {"code": code, "name": name})  # the API's rules for a site
        studies.add_site(session, study=study, code=code, name=name, actor=staff.user)
    except InvalidInput as invalid:
        errors = field_errors(invalid.problems, fields=("code", "name"), messages=_SITE_MESSAGES)
    except SiteCodeTaken:
        errors = {"code": f"The study has a site {code.upper()} already: enter another code"}
    except TooManyStrata as refused:
        errors = {"code": sentence(refused.detail)}
    else:
        return _to_setup(study, "site_added")
    values = {"code": code, "name": name}
    raise FormRefused(
        _setup_page(request, session, staff, study, values=values, errors=errors, status_code=422)
    )


_SIMULATION_FIELDS = ("participants", "runs", "seed")
_SIMULATION_MESSAGES = {
    "participants": "Enter a whole number of participants from 1 to 10,000",
    "runs": "Enter a whole number of runs from 1 to 1,000",
    "seed": "Enter the seed as a whole number, or leave it empty",
    "block_sizes": "The study has no block sizes to simulate",
    "site_proportions": "Add a site first: the study is stratified by site",
}


@router.post("/studies/{slug}/setup/simulate")
def simulate(
    request: Request, slug: SlugPath, session: ReadSessionDep, staff: StudyAdmin, form: CheckedForm
) -> Response:
    """Simulate enrollment with throw-away secrets: imbalance per arm and per stratum,
    and how often the next allocation could be guessed (nothing is stored)."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    values = {name: text(form, name, 30) for name in _SIMULATION_FIELDS}
    errors: dict[str, str] = {}
    result = None
    try:
        asked = validated(SimulationRequest, {k: v for k, v in values.items() if v})
    except InvalidInput as invalid:
        errors = field_errors(
            invalid.problems, fields=_SIMULATION_FIELDS, messages=_SIMULATION_MESSAGES
        )
    else:
        try:
            result = studies.simulate(study, request=asked)
        except InvalidInput as invalid:  # the design's own limits (participants x runs)
            errors = field_errors(
                invalid.problems,
                fields=_SIMULATION_FIELDS,
                messages={
                    **_SIMULATION_MESSAGES,
                    "runs": "Choose fewer participants or runs: participants times runs "
                    "may be 1,000,000 at most",
                },
            )
    return _setup_page(
        request,
        session,
        staff,
        study,
        values=values,
        errors=errors,
        simulation=result,
        status_code=422 if errors else 200,
    )


@router.post("/studies/{slug}/setup/activate")
def activate(
    request: Request, slug: SlugPath, session: SessionDep, staff: StudyAdmin, form: CheckedForm
) -> Response:
    """Open enrollment once the admin says they checked the design: the randomization
    settings are fixed and the commitment is published."""
    if first(form, "checked") != "yes":
        study = studies.get_study(session, slug=slug, user=staff.user)
        errors = {"checked": "Confirm that you have checked the design"}
        raise FormRefused(
            _setup_page(request, session, staff, study, errors=errors, status_code=422)
        )
    study = studies.get_study(session, slug=slug, user=staff.user, lock=studies.RowLock.for_update)
    studies.activate_study(session, study=study, actor=staff.user)
    return _to_setup(study, "activated")


@router.post("/studies/{slug}/setup/lock")
def lock(
    request: Request, slug: SlugPath, session: SessionDep, staff: StudyAdmin, form: CheckedForm
) -> Response:
    """Database lock, once confirmed: enrollment and randomization end, and the secret
    is revealed for anyone to check against the commitment."""
    if first(form, "understood") != "yes":
        study = studies.get_study(session, slug=slug, user=staff.user)
        errors = {"understood": "Confirm that enrollment and randomization end for good"}
        raise FormRefused(
            _setup_page(request, session, staff, study, errors=errors, status_code=422)
        )
    study = studies.get_study(session, slug=slug, user=staff.user, lock=studies.RowLock.for_update)
    studies.lock_study(session, study=study, actor=staff.user)
    return _to_setup(study, "locked")
