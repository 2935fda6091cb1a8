"""User administration: the list, a new user (with their first API token, shown once),
one user's page, a new token, revoking every token, deactivation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep
from app.auth import service as auth
from app.auth.deps import TokenLifetime
from app.auth.models import User
from app.auth.permissions import Permission
from app.auth.principal import Role
from app.console.deps import PREFIX, CheckedForm, Staff, console_router, needs, view
from app.console.forms import FormRefused, field_errors, text, validated
from app.errors import EmailTaken, InvalidInput
from app.studies import service as studies
from app.users import service as users
from app.users.schemas import UserCreate
from app.web.forms import first

USERS_PAGE = 100

router = console_router()

UserAdmin = Annotated[Staff, needs(Permission.manage_users)]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Done = Annotated[str | None, Query(max_length=20)]

_DONE = {
    "revoked": "Every API token of the user is revoked, and the user is signed out.",
    "deactivated": "The user is deactivated: they can no longer sign in or use the API.",
}

ROLE_LABELS = {
    Role.admin: "Admin",
    Role.coordinator: "Coordinator",
    Role.statistician: "Statistician (blinded)",
    Role.unblinded_statistician: "Unblinded statistician",
    Role.safety_reviewer: "Safety reviewer",
    Role.dsmb_member: "DSMB member",
}
_ROLE_HINTS = {
    Role.admin: "manages users and studies, and reads the audit trail",
    Role.coordinator: "enrolls and follows the participants of their sites",
    Role.statistician: "exports the blinded data and reads the reports",
    Role.unblinded_statistician: "also reads allocations and exports with arms",
    Role.safety_reviewer: "reviews adverse events and is emailed about serious ones",
    Role.dsmb_member: "reads the DSMB reports, open and closed",
}
_USER_FIELDS = ("email", "name", "role", "sites")
_USER_MESSAGES = {
    "email": "Enter an email address like name@example.org",
    "name": "Enter the user's name (up to 200 characters)",
    "role": "Choose the user's role",
    "sites-*": "Choose the sites from the list again: one of them no longer exists",
}


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
        "roles": [(role.value, f"{ROLE_LABELS[role]}: {_ROLE_HINTS[role]}") for role in Role],
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
        "email": text(form, "email", 320),
        "name": text(form, "name", 200),
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
        data = validated(UserCreate, document)  # as the API checks a new user
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
        errors = field_errors(invalid.problems, fields=_USER_FIELDS, messages=_USER_MESSAGES)
    except EmailTaken:
        errors = {"email": "A user with this email address exists already"}
    else:
        context = {"user": user, "token": token, "created": True}
        return view(request, "console/admin_token.html", context)
    page = _user_form(request, session, staff, values=values, errors=errors, status_code=422)
    raise FormRefused(page)


def _user_view(
    request: Request,
    session: Session,
    user: User,
    *,
    done: str | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "person": user,
        "role_label": ROLE_LABELS.get(Role(user.role), user.role),
        "sites": [f"{slug}:{code}" for slug, code in users.sites_of(session, user=user)],
        "notice": _DONE.get(done or ""),
        "values": {},
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
    reason = text(form, "reason")
    if not reason:
        errors = {"reason": "Enter why the user is deactivated"}
        raise FormRefused(_user_view(request, session, user, errors=errors, status_code=422))
    users.deactivate(session, user=user, actor=staff.user, reason=reason)
    return RedirectResponse(f"{PREFIX}/admin/users/{user.id}?done=deactivated", status_code=303)
