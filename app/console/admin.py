"""The console's administration pages: users, their sites and tokens; study creation
from a definition file, simulation, activation and lock; the audit trail.

Each page calls the services the API calls, with the signed-in admin as the actor: no
rule, permission or blinding decision of its own. What is read here is the input of a
form: its bounds, and the words that say what is wrong with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.api.body import MAX_JSON_DEPTH, BadBody, parse_json
from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import SlugPath
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth import service as auth
from app.auth.deps import TokenLifetime
from app.auth.models import User
from app.auth.permissions import Permission
from app.auth.principal import Role
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
from app.errors import (
    EmailTaken,
    FieldProblem,
    InvalidInput,
    InvalidStudyDefinition,
    SiteCodeTaken,
    StudySlugTaken,
    TooManyStrata,
)
from app.randomization.simulation import SimulationResult
from app.studies import service as studies
from app.studies.models import Study
from app.studies.schemas import SimulationRequest, SiteCreate
from app.studies.validation import MAX_SITE_CODE, parse_definition
from app.users import service as users
from app.users.schemas import UserCreate
from app.web.forms import Form, csrf_ok, first

MAX_TEXT = 2000
MAX_DEFINITION_BYTES = 1024 * 1024
# The file, the form's token and the multipart framing; a larger body is refused (413)
# before it is read, a file above MAX_DEFINITION_BYTES within it gets the form again.
UPLOAD_BODY_LIMIT = 2 * MAX_DEFINITION_BYTES
MAX_FIELD_BYTES = 1024  # the upload form's only text field is its csrf_token
# A YAML file may repeat parts with aliases (`*who5`): expanded, it may hold no more
# values than this, so a few kilobytes of aliases cannot make billions of them.
MAX_YAML_VALUES = 200_000
MAX_PROBLEMS_SHOWN = 100
USERS_PAGE = 100
AUDIT_PAGE = 100

router = console_router()

UserAdmin = Annotated[Staff, needs(Permission.manage_users)]
StudyAdmin = Annotated[Staff, needs(Permission.manage_studies)]
Auditor = Annotated[Staff, needs(Permission.read_audit)]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Done = Annotated[str | None, Query(max_length=20)]

_DONE = {
    "revoked": "Every API token of the user is revoked, and the user is signed out.",
    "deactivated": "The user is deactivated: they can no longer sign in or use the API.",
    "created": "The study is created as a draft.",
    "site_added": "The site is added.",
    "activated": "The study is enrolling. Its commitment is published below.",
    "locked": "The study is locked. Its secret is revealed below.",
}


def _text(form: Form, name: str) -> str:
    return first(form, name).strip()[:MAX_TEXT]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)


# --- users ----------------------------------------------------------------------------


@router.get("/admin/users")
def users_page(
    request: Request,
    session: ReadSessionDep,
    staff: UserAdmin,
    after: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Response:
    """Every user, with their role, sites and whether they are active; a page at a time."""
    found = users.list_users(session, after_id=after, limit=USERS_PAGE)
    context = {
        "rows": [(user, [f"{slug}:{code}" for slug, code in sites]) for user, sites in found],
        "next_after": found[-1][0].id if len(found) == USERS_PAGE else None,
        "after": after,
    }
    return view(request, "console/admin_users.html", context)


_ROLE_LABELS = {
    Role.admin: "Admin",
    Role.coordinator: "Coordinator",
    Role.statistician: "Statistician (blinded)",
    Role.unblinded_statistician: "Unblinded statistician",
}
_ROLE_HINTS = {
    Role.admin: "manages users and studies, and reads the audit trail",
    Role.coordinator: "enrolls and follows the participants of their sites",
    Role.statistician: "exports the blinded data and reads the reports",
    Role.unblinded_statistician: "also reads allocations and exports with arms",
}


def _user_form(
    request: Request,
    session: Session,
    staff: Staff,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    every = studies.list_studies(session, user=staff.user, after_id=0, limit=1000)
    context = {
        "roles": [(role.value, f"{_ROLE_LABELS[role]}: {_ROLE_HINTS[role]}") for role in Role],
        "site_options": [
            (f"{study.slug}:{site.code}", f"{study.title}: {site.name} ({study.slug}:{site.code})")
            for study in every
            for site in sorted(study.sites, key=lambda s: s.code)
        ],
        "values": {"email": "", "name": "", "role": "", "sites": [], **(values or {})},
        "errors": errors or {},
    }
    return view(request, "console/admin_user_new.html", context, status_code=status_code)


@router.get("/admin/users/new")
def new_user_page(request: Request, session: ReadSessionDep, staff: UserAdmin) -> Response:
    """The form that creates a user: email, name, role and (coordinators) sites."""
    return _user_form(request, session, staff)


_USER_MESSAGES = {
    "email": "Enter an email address like name@example.org",
    "name": "Enter the user's name (up to 200 characters)",
    "role": "Choose the user's role",
}


def _user_problems(problems: Sequence[FieldProblem]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in problems:
        field = str(problem.loc[0]) if problem.loc else "email"
        if field == "sites" and len(problem.loc) > 1:
            message = "Choose the sites from the list again: one of them no longer exists"
        else:
            message = _USER_MESSAGES.get(field) or _sentence(problem.msg)
        errors.setdefault(
            field if field in ("email", "name", "role", "sites") else "email", message
        )
    return errors


def _user_create(document: Mapping[str, object]) -> UserCreate:
    """The document checked as the API checks a new user (`UserCreate`)."""
    try:
        return UserCreate.model_validate(document)
    except ValidationError as invalid:
        found = [FieldProblem(tuple(e["loc"]), e["msg"]) for e in invalid.errors()]
        raise InvalidInput(found) from None


@router.post("/admin/users")
def create_user(
    request: Request,
    session: SessionDep,
    staff: UserAdmin,
    form: CheckedForm,
    lifetime: TokenLifetime,
) -> Response:
    """Create the user and show their first API token, once (422 and the form again,
    nothing stored, if something is missing or wrong)."""
    chosen = [value[:100] for value in form.get("sites", [])[:200]]
    values = {
        "email": _text(form, "email")[:320],
        "name": _text(form, "name")[:200],
        "role": first(form, "role")[:32],
        "sites": chosen,
    }
    document = {
        "email": values["email"],
        "name": values["name"],
        "role": values["role"],
        "sites": [
            dict(zip(("study", "site"), pick.split(":", 1), strict=False)) for pick in chosen
        ],
    }
    try:
        data = _user_create(document)
        user, token = users.create_user(
            session,
            email=data.email,
            name=data.name,
            role=data.role,
            sites=data.sites,
            actor=staff.user,
            token_lifetime=lifetime,
        )
    except InvalidInput as invalid:
        session.rollback()
        errors = _user_problems(invalid.problems)
    except EmailTaken:
        session.rollback()
        errors = {"email": "A user with this email address exists already"}
    else:
        context = {"user": user, "token": token, "created": True}
        return view(request, "console/admin_token.html", context)
    return _user_form(request, session, staff, values=values, errors=errors, status_code=422)


def _user_view(
    request: Request,
    session: Session,
    user: User,
    *,
    done: str | None = None,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "person": user,
        "role_label": _ROLE_LABELS.get(Role(user.role), user.role),
        "sites": [f"{slug}:{code}" for slug, code in users.sites_of(session, user=user)],
        "notice": _DONE.get(done or ""),
        "values": values or {},
        "errors": errors or {},
    }
    return view(request, "console/admin_user.html", context, status_code=status_code)


@router.get("/admin/users/{user_id}")
def user_page(
    request: Request, user_id: UserId, session: ReadSessionDep, staff: UserAdmin, done: Done = None
) -> Response:
    """One user: role, sites, status; a new token, revoke every token, deactivate."""
    user = auth.get_user(session, user_id=user_id)
    return _user_view(request, session, user, done=done)


@router.post("/admin/users/{user_id}/tokens")
def issue_token(
    request: Request,
    user_id: UserId,
    session: SessionDep,
    staff: UserAdmin,
    form: CheckedForm,
    lifetime: TokenLifetime,
) -> Response:
    """A new API token for the user, shown once; their other tokens keep working."""
    user = auth.get_user(session, user_id=user_id)
    token = users.issue_token(session, user=user, actor=staff.user, token_lifetime=lifetime)
    return view(request, "console/admin_token.html", {"user": user, "token": token})


@router.post("/admin/users/{user_id}/revoke")
def revoke_tokens(
    user_id: UserId, session: SessionDep, staff: UserAdmin, form: CheckedForm
) -> Response:
    """Refuse every API token of the user from now on, and end their console sessions."""
    user = auth.get_user(session, user_id=user_id)
    users.revoke_tokens(session, user=user, actor=staff.user)
    return RedirectResponse(f"{PREFIX}/admin/users/{user.id}?done=revoked", status_code=303)


@router.post("/admin/users/{user_id}/deactivate")
def deactivate(
    request: Request, user_id: UserId, session: SessionDep, staff: UserAdmin, form: CheckedForm
) -> Response:
    """Deactivate the user, with the reason (audited): signed out and refused at once.
    The last active admin stays (a page says so)."""
    user = auth.get_user(session, user_id=user_id)
    reason = _text(form, "reason")
    if not reason:
        errors = {"reason": "Enter why the user is deactivated"}
        return _user_view(request, session, user, errors=errors, status_code=422)
    users.deactivate(session, user=user, actor=staff.user, reason=reason)
    return RedirectResponse(f"{PREFIX}/admin/users/{user.id}?done=deactivated", status_code=303)


# --- a new study from its definition file ----------------------------------------------


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
    """The one file of the form (its csrf_token checked first); files larger than
    MAX_DEFINITION_BYTES, other files or other fields are refused."""
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
    if len(content) > MAX_DEFINITION_BYTES:
        return Upload(file_name, b"", "Choose a file of 1 MB or less: this one is larger")
    if not content.strip():
        return Upload(file_name, b"", "The file is empty: choose the study definition file")
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


class _Unreadable(Exception):
    """The file is not a document this page can read (not YAML or JSON, too deep...)."""


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    what = getattr(error, "problem", None) or "it cannot be read"
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"The file is not valid YAML: {what}{where}"


def _document(file_name: str, content: bytes) -> Any:
    """The file's document: JSON when its name ends in `.json`, else YAML, as
    `trialdesk studies create` reads it; within the API's bounds on a JSON body."""
    if file_name.lower().endswith(".json"):
        try:
            return parse_json(content)
        except BadBody as bad:
            raise _Unreadable(f"The file is not valid JSON: {bad}") from None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Unreadable("The file is not UTF-8 text: save it as UTF-8 and try again") from None
    try:
        document = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as error:
        raise _Unreadable(_yaml_problem(error)) from None
    except (RecursionError, ValueError):
        raise _Unreadable(
            "The file is not valid YAML: it nests too deep or has a huge number"
        ) from None
    problem = _bounds_problem(document)
    if problem:
        raise _Unreadable(problem)
    return document


def _bounds_problem(document: Any) -> str | None:
    """What keeps a loaded YAML document within the bounds of a JSON body, if anything:
    how many values once aliases are expanded, how deep, and text PostgreSQL can store."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    count = 0
    while pending:
        item, depth = pending.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            return "The file is too large once its aliases (*name) are expanded"
        if depth > MAX_JSON_DEPTH:
            return f"The file nests more than {MAX_JSON_DEPTH} levels deep"
        texts: list[Any] = []
        if isinstance(item, dict):
            texts = list(item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        else:
            texts = [item]
        for text in texts:
            if isinstance(text, str) and not _storable(text):
                return "The file holds characters that cannot be stored (NUL, or lone surrogates)"
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@router.post("/admin/studies", max_body_size=UPLOAD_BODY_LIMIT)
def create_study(
    request: Request, staff: StudyAdmin, upload: DefinitionUpload, session: SessionDep
) -> Response:
    """Create a draft study from the file; every problem is listed by its path in the
    document (422, nothing stored)."""
    if upload.problem:
        return _new_study_form(
            request, file_name=upload.file_name, problems=[("", upload.problem)], status_code=422
        )
    try:
        definition = parse_definition(_document(upload.file_name, upload.content))
        study = studies.create_study(session, definition=definition, actor=staff.user)
    except _Unreadable as unreadable:
        problems = [("", str(unreadable))]
    except InvalidStudyDefinition as invalid:
        problems = [(_dotted(p.loc), p.msg) for p in invalid.problems]
    except StudySlugTaken as taken:
        session.rollback()
        problems = [("slug", _sentence(taken.detail))]
    else:
        return RedirectResponse(f"{PREFIX}/studies/{study.slug}/setup?done=created", 303)
    return _new_study_form(request, file_name=upload.file_name, problems=problems, status_code=422)


# --- a study's set-up: sites, simulation, activation, lock ------------------------------


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
    code, name = _text(form, "code")[:50], _text(form, "name")[:250]
    errors: dict[str, str] = {}
    try:
        SiteCreate(code=code, name=name)  # the API's rules for a site
    except ValidationError as invalid:
        for problem in invalid.errors():
            field = str(problem["loc"][0])
            errors.setdefault(field, _SITE_MESSAGES.get(field, _sentence(problem["msg"])))
    if not errors:
        try:
            studies.add_site(session, study=study, code=code, name=name, actor=staff.user)
        except SiteCodeTaken:
            errors["code"] = f"The study has a site {code.upper()} already: enter another code"
        except TooManyStrata as refused:
            errors["code"] = _sentence(refused.detail)
        else:
            return _to_setup(study, "site_added")
        session.rollback()
    values = {"code": code, "name": name}
    return _setup_page(
        request, session, staff, study, values=values, errors=errors, status_code=422
    )


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
    values = {name: _text(form, name)[:30] for name in ("participants", "runs", "seed")}
    errors: dict[str, str] = {}
    result = None
    try:
        asked = SimulationRequest.model_validate({k: v for k, v in values.items() if v})
        result = studies.simulate(study, request=asked)
    except ValidationError as invalid:
        for problem in invalid.errors():
            field = str(problem["loc"][0]) if problem["loc"] else "participants"
            errors.setdefault(field, _SIMULATION_MESSAGES.get(field, _sentence(problem["msg"])))
    except InvalidInput as invalid:  # the design's own limits (participants x runs)
        for found in invalid.problems:
            part = str(found.loc[0]) if found.loc else ""
            field = "runs" if part == "runs" else "participants"
            message = (
                "Choose fewer participants or runs: participants times runs may be "
                "1,000,000 at most"
                if part == "runs"
                else _SIMULATION_MESSAGES.get(part) or _sentence(found.msg)
            )
            errors.setdefault(field, message)
    status = 422 if errors else 200
    return _setup_page(
        request,
        session,
        staff,
        study,
        values=values,
        errors=errors,
        simulation=result,
        status_code=status,
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
        return _setup_page(request, session, staff, study, errors=errors, status_code=422)
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
        return _setup_page(request, session, staff, study, errors=errors, status_code=422)
    study = studies.get_study(session, slug=slug, user=staff.user, lock=studies.RowLock.for_update)
    studies.lock_study(session, study=study, actor=staff.user)
    return _to_setup(study, "locked")


# --- the audit trail ----------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _changes(changes: Mapping[str, Any]) -> Iterator[str]:
    for field, change in changes.items():
        if isinstance(change, Mapping) and set(change) <= {"old", "new"}:
            yield f"{field}: {_value(change.get('old'))} → {_value(change.get('new'))}"
        else:
            yield f"{field}: {_value(change)}"


def _last_seq(session: Session) -> int:
    """The last record's seq, found with the trail's listing alone (the trail has no
    count): a record at or after `seq` exists for every seq up to the last, and none
    beyond; so double, then halve (two dozen indexed look-ups for millions)."""

    def exists(seq: int) -> bool:
        return bool(audit.list_records(session, study_id=None, after_seq=seq - 1, limit=1))

    if not exists(1):
        return 0
    low, high = 1, 2
    while exists(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if exists(middle) else (low, middle)
    return low


_ACTIONS = frozenset(a.value for a in AuditAction)


@router.get("/admin/audit")
def audit_page(
    request: Request,
    session: ReadSessionDep,
    staff: Auditor,
    study: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=320)] = "",
    entity: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    verify: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    """The audit trail, oldest first, 100 records a page; by study, action, actor or
    entity. "Verify the chain" re-hashes the whole trail."""
    if action and action not in _ACTIONS:
        raise InvalidInput([FieldProblem(("action",), "not an audit action")], part="query")
    filters = {
        "study": study.strip(),
        "action": action,
        "actor": actor.strip().lower(),
        "entity": entity.strip(),
    }
    study_id, hidden = studies.trail_scope(session, staff.user, filters["study"] or None)
    rows = audit.list_records(
        session,
        study_id=study_id,
        hidden_studies=hidden,
        after_seq=after,
        limit=AUDIT_PAGE,
        entity=filters["entity"] or None,
        action=filters["action"] or None,
        actor=filters["actor"] or None,
    )
    shown = {name: value for name, value in filters.items() if value}
    next_query = None
    if len(rows) == AUDIT_PAGE:
        next_query = urlencode({**shown, "after": rows[-1].seq})
    checked: dict[str, Any] | None = None
    if verify == "1":
        breaks = audit.verify_chain(session)
        checked = {"breaks": breaks, "count": 0 if breaks else _last_seq(session)}
    context = {
        "rows": [
            {
                "seq": r.seq,
                "at": r.at.strftime("%Y-%m-%d %H:%M:%S"),
                "actor": r.actor,
                "action": r.action,
                "entity": f"{r.entity_type} {r.entity_id}",
                "reason": r.reason or "",
                "changes": list(_changes(r.changes)),
            }
            for r in rows
        ],
        "filters": filters,
        "studies": studies.list_studies(session, user=staff.user, after_id=0, limit=1000),
        "actions": [a.value for a in AuditAction],
        "next_query": next_query,
        "first_query": urlencode(shown) if after else None,
        "checked": checked,
        "filtered": bool(shown),
    }
    return view(request, "console/admin_audit.html", context)
