"""Who is signed in to the console, and whether a posted form is theirs.

A session lives in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS) that holds a
random token; the database keeps its hash, so ending a session, revoking a user's
tokens or deactivating the user signs them out at the next request. Every form carries
a `csrf_token` bound to the session, and posts from another origin are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask
from starlette.types import Scope

from app.api.body import storable
from app.api.deps import RequestSlot
from app.auth import service as auth
from app.auth.permissions import Permission, has_permission
from app.auth.principal import Principal
from app.auth.service import SignedIn
from app.config import Settings
from app.console.forms import FormRefused
from app.db.base import utcnow
from app.db.engine import Database
from app.errors import FieldProblem, Forbidden, InvalidInput, NotAuthenticated
from app.keys import Use
from app.studies import service as studies
from app.studies.models import Study
from app.surveys import worklist as work
from app.web.forms import Form, FormDep, csrf_ok, csrf_token, first
from app.web.pages import page

COOKIE = "trialdesk_session"
PREFIX = "/console"
# A session's last use is written at most this often (idle time is counted in minutes).
TOUCH_EVERY = timedelta(minutes=1)
MAX_COOKIE_LENGTH = 128
# A console form (enrollment, a reason, a note) is a few kilobytes; a definition file,
# the one upload, says what it takes on its own route.
FORM_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Staff:
    """The signed-in user of a console request, and their form token."""

    signed_in: SignedIn
    csrf: str

    @property
    def user(self) -> Principal:
        return self.signed_in.principal

    def may(self, permission: Permission) -> bool:
        return has_permission(self.user.role, permission)


def console_key(request: Request) -> bytes:
    db: Database = request.app.state.db
    return db.keys.derived(Use.console)


def signed_in(request: Request) -> Staff:
    """The signed-in user; `NotAuthenticated` (a redirect to the sign-in page) if the
    cookie is missing, unknown, ended or idle, or the user was deactivated."""
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > MAX_COOKIE_LENGTH:
        raise NotAuthenticated("sign in to continue")
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    now = utcnow()
    with db.session(write=False) as session:
        who = auth.session_user(
            session, token=token, now=now, idle=timedelta(minutes=settings.console_idle_minutes)
        )
    if now - who.last_seen_at >= TOUCH_EVERY:
        with db.begin() as session:
            auth.touch_session(session, session_id=who.session_id, now=now)
    staff = Staff(who, csrf_token(console_key(request), bound_to=f"session:{who.session_id}"))
    request.state.staff = staff
    return staff


StaffDep = Annotated[Staff, Depends(signed_in)]


def needs(permission: Permission) -> object:
    """A dependency: the signed-in user, if their role has the permission (else 403)."""

    def check(staff: StaffDep) -> Staff:
        return required(staff, permission)

    return Depends(check)


def required(staff: Staff, permission: Permission) -> Staff:
    """The signed-in user, if their role has the permission (else 403, in words)."""
    if not staff.may(permission):
        role = staff.user.role.replace("_", " ")
        raise Forbidden(f"your role ({role}) cannot {_MAY.get(permission, permission)}")
    return staff


_MAY = {
    Permission.manage_users: "manage users",
    Permission.manage_studies: "set up studies",
    Permission.read_studies: "see this study",
    Permission.read_participants: "see participants",
    Permission.enroll: "enroll participants",
    Permission.randomize: "randomize participants",
    Permission.withdraw: "withdraw participants",
    Permission.enter_data: "enter or correct survey answers",
    Permission.manage_incentives: "manage incentives",
    Permission.stock_incentives: "load gift cards",
    Permission.unblind: "unblind participants",
    Permission.read_allocations: "see allocations",
    Permission.read_audit: "read the audit trail",
    Permission.acknowledge_alerts: "acknowledge safety alerts",
    Permission.export_blinded: "download exports",
    Permission.export_unblinded: "download the unblinded dataset",
    Permission.read_reports: "see reports",
    Permission.read_dsmb_open: "see the DSMB report",
    Permission.read_dsmb_closed: "see the DSMB report's closed part",
    Permission.record_safety: "record adverse events or protocol deviations",
    Permission.read_safety: "see adverse events or protocol deviations",
    Permission.review_safety: "review adverse events",
    Permission.manage_consent: "manage consents",
}


def same_origin(request: Request) -> bool:
    """Whether a post comes from this site's own pages (Origin, Sec-Fetch-Site).

    A page sent with `Referrer-Policy: no-referrer` (the sign-in link's) makes the
    browser post `Origin: null`; it is taken only with `Sec-Fetch-Site: same-origin`,
    which browsers set themselves and pages cannot forge."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return fetch_site == "same-origin"
    try:
        return urlsplit(origin).netloc == request.headers.get("host", "")
    except ValueError:  # not a URL at all
        return False


def checked_form(request: Request, staff: StaffDep, form: FormDep) -> Form:
    """The posted form, if it came from a page rendered for this session (403 else) and
    holds only text that can be stored (422 else: no NUL, no lone surrogate)."""
    if not same_origin(request) or not csrf_ok(
        console_key(request),
        bound_to=f"session:{staff.signed_in.session_id}",
        given=first(form, "csrf_token"),
    ):
        raise FormExpired()
    refuse_unstorable(form)
    return form


def refuse_unstorable(form: Form) -> None:
    """InvalidInput for a field with characters no database column can keep."""
    problems = [
        FieldProblem((name,), "remove the invisible control characters from this field")
        for name, values in form.items()
        if any(not storable(value) for value in values)
    ]
    if problems:
        raise InvalidInput(problems)


def not_cross_site(request: Request) -> None:
    """Refuse a download that another site's page started (403): a GET that writes an
    audit record must come from the console's own pages or the address bar."""
    if request.headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
        raise Forbidden("open this download from the console's own page")


CheckedForm = Annotated[Form, Depends(checked_form)]


class FormExpired(Forbidden):
    code, title = "form-expired", "The form did not come from this session's pages"


def view(
    request: Request,
    template: str,
    context: Mapping[str, object],
    *,
    status_code: int = 200,
    badge: bool = False,
) -> Response:
    """A console page: the signed-in user and their form token go to every template;
    with `badge`, the count of open safety alerts (of the page's study, if it has one)."""
    staff: Staff | None = getattr(request.state, "staff", None)
    study = context.get("study")
    badge_shown = None
    if staff is not None and badge:
        badge_shown = alert_badge(request, staff, study if isinstance(study, Study) else None)
    return page(
        request,
        template,
        {"staff": staff, "alert_badge": badge_shown, **context},
        status_code=status_code,
        personal=True,
    )


BADGE_LIMIT = 100  # per study: more is shown as "100+"


@dataclass(frozen=True)
class AlertBadge:
    """The navigation's count of open safety alerts in every study the user may see."""

    count: int
    more: bool  # at least BADGE_LIMIT in some study
    href: str  # the worklist of the one study with alerts, else the studies


def alert_badge(request: Request, staff: Staff, study: Study | None) -> AlertBadge | None:
    """Open safety alerts at the user's sites: of the study on a study's pages, else
    across the user's studies (None for roles that see no participants, or when there
    are none). Its own read, as any page may show it."""
    if not staff.may(Permission.read_participants):
        return None
    db: Database = request.app.state.db
    counts: dict[str, int] = {}
    with db.session(write=False) as session:
        every = (
            [studies.get_study(session, slug=study.slug, user=staff.user)]
            if study is not None
            else studies.list_studies(session, user=staff.user, after_id=0, limit=100)
        )
        for shown in every:
            found = len(
                work.alerts(
                    session,
                    study=shown,
                    user=staff.user,
                    open_only=True,
                    after_id=0,
                    limit=BADGE_LIMIT,
                )
            )
            if found:
                counts[shown.slug] = found
    if not counts:
        return None
    only = next(iter(counts)) if len(counts) == 1 else None
    href = f"{PREFIX}/studies/{only}/worklist" if only else PREFIX
    more = any(count >= BADGE_LIMIT for count in counts.values())
    return AlertBadge(sum(counts.values()), more, href)


_STUDY_LINKS: Sequence[tuple[str, str, Permission]] = (
    ("", "Dashboard", Permission.read_reports),
    ("/participants", "Participants", Permission.read_participants),
    ("/enroll", "Enroll", Permission.enroll),
    ("/applicants", "Sign-ups", Permission.review_applicants),
    ("/worklist", "Worklist", Permission.read_participants),
    ("/consents/outstanding", "Re-consent", Permission.manage_consent),
    ("/events", "Adverse events", Permission.read_safety),
    ("/deviations", "Deviations", Permission.read_safety),
    ("/incentives", "Incentives", Permission.manage_incentives),
    ("/exports", "Exports", Permission.export_blinded),
    ("/reports", "Reports", Permission.read_reports),
    ("/reports/dsmb", "DSMB report", Permission.read_dsmb_open),
    ("/setup", "Set-up", Permission.manage_studies),
)


def study_view(
    request: Request,
    staff: Staff,
    study: Study,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> Response:
    """A page of one study, with the study's navigation (only the pages the role has)."""
    base = f"{PREFIX}/studies/{study.slug}"
    links = [(base + path, label) for path, label, need in _STUDY_LINKS if staff.may(need)]
    definition = studies.definition_of(study)
    common = {
        "study": study,
        "definition": definition,
        "base": base,
        "study_links": links,
        "here": request.url.path,
        "today": utcnow().astimezone(definition.zone()).date(),
    }
    return view(request, template, common | context, status_code=status_code, badge=True)


def console_router() -> APIRouter:
    """A router of console pages: under /console, pages for errors, forms of at most
    FORM_BODY_LIMIT, a request slot each, and out of the API's OpenAPI document."""
    return APIRouter(
        prefix=PREFIX,
        tags=["console"],
        route_class=ConsoleRoute,
        default_response_class=HTMLResponse,
        include_in_schema=False,
        max_body_size=FORM_BODY_LIMIT,
        dependencies=[RequestSlot],
    )


def send_soon(request: Request, response: Response) -> Response:
    """Have the scheduler send what was just queued (a sign-in link, an invitation) once
    the response is sent, rather than at its next pass."""
    wake = getattr(request.app.state, "wake_scheduler", None)
    if wake is not None:
        response.background = BackgroundTask(wake)
    return response


class ConsoleRoute(APIRoute):
    """Console routes answer every failure with a page: a sign-in redirect for 401, a
    page that says what happened (with the problem's status) for the rest; a refused
    form (`FormRefused`, raised so the transaction is rolled back) with its own page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except FormRefused as refused:
                return refused.page

        return handler

    def error_page(self, request: Request, error: Exception, problem: Response) -> Response:
        status = problem.status_code
        if status == 401:
            target = request.url.path
            if request.method == "GET" and request.url.query:
                target += "?" + request.url.query
            response: Response = RedirectResponse(
                f"{PREFIX}/sign-in?next={quote(target, safe='')}", status_code=303
            )
            response.delete_cookie(COOKIE, path="/")
            return response
        detail = getattr(error, "detail", None)
        context = {
            "heading": _HEADINGS.get(status, "Something went wrong"),
            "detail": detail if isinstance(detail, str) else None,
            "back": _came_from(request),
        }
        response = view(request, "console/message.html", context, status_code=status)
        retry_after = problem.headers.get("Retry-After")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response


def _came_from(request: Request) -> str | None:
    """The console page a refused form was on (for a link back to it), if any."""
    try:
        referer = urlsplit(request.headers.get("referer", ""))
    except ValueError:
        return None
    if request.method != "POST" or referer.netloc != request.headers.get("host"):
        return None
    if not referer.path.startswith(PREFIX) or referer.path == request.url.path:
        return None
    return referer.path


def too_large_page(scope: Scope) -> Response | None:
    """The page for a form too large to take, on a console address (else None)."""
    if not str(scope.get("path", "")).startswith(PREFIX):
        return None
    context = {
        "heading": _HEADINGS[413],
        "detail": "what was sent is larger than any form of these pages takes",
        "back": None,
    }
    return view(Request(scope), "console/message.html", context, status_code=413)


_HEADINGS = {
    400: "The request could not be read",
    403: "You cannot do this",
    404: "Page not found",
    409: "This cannot be done now",
    413: "The form is too large",
    422: "Some of what was sent cannot be used",
    429: "Too many tries",
    503: "Trialdesk is busy",
}
