"""The console's Starlette app: sign-in, the staff wrapper every page goes through, rendering."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crmcore.console import auth
from crmcore.console.i18n import Environments, Formatter, available_languages, negotiate
from crmcore.console.menu import MenuEntry
from crmcore.context import Actor
from crmcore.errors import CRMError, NotFound, PermissionDenied, ValidationError
from crmcore.i18n import N_
from crmcore.settings import DEV_SECRET

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.models import User
    from crmcore.permissions import Grants

log = logging.getLogger("crmcore.console")
STATIC_DIR = Path(__file__).resolve().parent / "static"

#: A console view: ``view(request, form)`` (sync, runs in a worker thread acting for the user).
View = Callable[[Request, FormData | None], Response]

CORE_MENU = (
    MenuEntry(label="My day", path="", permission="console.access", order=10),
    MenuEntry(label="Search", path="search", permission="contacts.view", order=20),
    MenuEntry(label="Pipeline", path="pipeline", permission="opportunities.view", order=30),
    MenuEntry(label="Campaigns", path="campaigns", permission="reports.view", order=50),
    MenuEntry(label="Reports", path="reports", permission="reports.view", order=90),
)


def crm_of(request: Request) -> CRM:
    """The CRM the console serves."""
    crm: CRM = request.app.state.crm
    return crm


def base_path(request: Request) -> str:
    """The console's URL prefix without the trailing slash (``/console``)."""
    return auth.cookie_path(request).rstrip("/")


def staff(permission: str | None = "console.access") -> Callable[[View], Callable[[Request], Any]]:
    """Turn *view* into a console endpoint behind sign-in, CSRF and a permission check.

    The view runs in a worker thread inside ``crm.acting_as(user)``, so every
    service it calls obeys the user's permissions and record rules. POSTs must
    carry the session's CSRF token (form field ``csrf`` or header
    ``X-CSRF-Token``).
    """

    def decorate(view: View) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            form = await request.form() if request.method == "POST" else None
            return await run_in_threadpool(_serve, view, permission, request, form)

        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        endpoint.permission = permission  # type: ignore[attr-defined]
        return endpoint

    return decorate


def _serve(view: View, permission: str | None, request: Request, form: FormData | None) -> Response:
    crm = crm_of(request)
    with ExitStack() as stack:
        # A GET's reads (the session check included) share one read-only unit of work.
        page_ctx = stack.enter_context(crm.transaction(readonly=True)) if request.method == "GET" else None
        session = auth.read_session(crm, request.cookies.get(auth.SESSION_COOKIE))
        found = auth.session_grants(crm, session) if session else None
        new_cookie: str | None = None
        if found is None and (hosted := _host_account(crm, request)) is not None:
            new_cookie, session, found = hosted
        if found is None or session is None:
            return _signed_out(crm, request)
        user, grants = found
        if request.method == "POST":
            given = (form.get("csrf") if form else None) or request.headers.get("x-csrf-token")
            if not auth.tokens_match(session.csrf, given):
                expired = N_("The form expired or did not come from this site. Reload and try again.")
                return error_page(request, 403, expired)
        request.state.user = user
        request.state.csrf = session.csrf
        request.state.grants = grants
        actor = Actor(user_id=user.id, label=f"user:{user.email}", role=user.role, team_id=user.team_id)
        if page_ctx is not None:
            page_ctx.actor = actor
            page_ctx.cache["grants"] = grants
        with crm.acting_as(actor):
            memo = crm._acting_memo.get()
            if memo is not None:
                memo[f"grants:{user.id}"] = grants
            if permission and not grants.allows(permission):
                response = error_page(request, 403, N_("You may not see this page."))
            else:
                try:
                    response = view(request, form)
                except ValidationError as exc:
                    response = error_page(request, 422, error_text(request, exc), field_errors(request, exc))
                except (NotFound, PermissionDenied, CRMError) as exc:
                    status = exc.http_status if 400 <= exc.http_status < 500 else 500
                    text = error_text(request, exc) if status < 500 else N_("Something went wrong.")
                    response = error_page(request, status, text)
    if new_cookie:
        auth.set_cookie(crm, request, response, auth.SESSION_COOKIE, new_cookie,
                        crm.settings.console_session_hours * 3600)  # fmt: skip
    response.headers.setdefault("cache-control", "no-store")
    return response


def _host_account(crm: CRM, request: Request) -> tuple[str, auth.Session, tuple[User, Grants]] | None:
    """Behind a host's authentication (``request.user``), map its account to a CRM user and sign them in."""
    account = request.scope.get("user")
    if account is None or not getattr(account, "is_authenticated", False):
        return None
    try:
        user = crm.users.for_host_account(account)
    except CRMError:
        return None
    token, session = auth.issue_session(crm, user)
    found = auth.session_grants(crm, session)
    return (token, session, found) if found else None


def _signed_out(crm: CRM, request: Request) -> Response:
    login = f"{base_path(request)}/login"
    if request.method == "GET" and "hx-request" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response: Response = RedirectResponse(f"{login}?next={_quote(target)}", status_code=303)
    else:
        response = PlainTextResponse("sign in again", status_code=401, headers={"HX-Redirect": login})
    if request.cookies.get(auth.SESSION_COOKIE):
        auth.clear_cookie(crm, request, response, auth.SESSION_COOKIE)
    return response


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


def environments(crm: CRM) -> Environments:
    """The per-language template environments of *crm*'s console (made once)."""
    found: Environments | None = getattr(crm, "_console_environments", None)
    if found is None:
        found = Environments(crm)
        crm._console_environments = found  # type: ignore[attr-defined]
    return found


def language(request: Request) -> str:
    """The language of this request (chosen, the user's, the browser's, the default)."""
    user = getattr(request.state, "user", None)
    return negotiate(crm_of(request), cookie=request.cookies.get(auth.LANGUAGE_COOKIE),
                     user_locale=user.locale if user is not None else None,
                     accept=request.headers.get("accept-language"))  # fmt: skip


def translator(request: Request) -> Callable[[str], str]:
    """The gettext of this request's language, for texts a view composes itself (search hits' details)."""
    gettext: Callable[[str], str] = environments(crm_of(request)).get(language(request)).console_gettext  # type: ignore[attr-defined]
    return gettext


def formatter(request: Request) -> Formatter:
    """Dates, numbers and money the way this request's language writes them."""
    found: Formatter = environments(crm_of(request)).get(language(request)).console_formatter  # type: ignore[attr-defined]
    return found


def menu(request: Request) -> list[MenuEntry]:
    """The menu entries the signed-in user may use, in order."""
    crm = crm_of(request)
    grants = getattr(request.state, "grants", None)
    entries = [*CORE_MENU, *crm.plugins.collect("crm_console_menu", crm=crm)]
    allowed = [e for e in entries if grants is not None and (e.permission is None or grants.allows(e.permission))]
    return sorted(allowed, key=lambda e: (e.order, e.label))


def page(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    """Render a console page (autoescaped) with the menu, CSRF token, language and formatting filters."""
    crm = crm_of(request)
    lang = language(request)
    env = environments(crm).get(lang)
    grants = getattr(request.state, "grants", None)
    base = base_path(request)

    def url(path: str = "") -> str:
        return f"{base}/{path.lstrip('/')}"

    def can(permission_name: str) -> bool:
        return grants is not None and bool(grants.allows(permission_name))

    values = {
        "request": request, "user": getattr(request.state, "user", None),
        "csrf": getattr(request.state, "csrf", ""), "menu": menu(request) if grants is not None else [],
        "url": url, "can": can, "base": base, "query": request.query_params.get("q", ""),
        "languages": available_languages(crm),
        **(context or {}),
    }  # fmt: skip
    body = env.get_template(template).render(**values)
    return HTMLResponse(body, status_code=status)


def panel_context(request: Request, ctx: HookContext) -> None:
    """Tell the panel hooks of this page its URL prefix and language (see :func:`render_panel`)."""
    ctx.cache["console_base"] = base_path(request)
    ctx.cache["console_env"] = environments(crm_of(request)).get(language(request))


def render_panel(ctx: HookContext, template: str, **values: Any) -> str:
    """Render a panel's HTML in the page's language: a console template, autoescaped, with gettext.

    For ``crm_contact_panels`` and ``crm_console_my_day``: the template gets
    ``_()``, the console's filters (``datetime``, ``money``, ``number``), ``url(path)``
    and ``base`` (the console's prefix), and *values*. Texts go in the plugin's
    ``locale/<lang>/LC_MESSAGES/console.po`` like those of its pages.
    """
    env = ctx.cache.get("console_env") or environments(ctx.crm).get(ctx.crm.settings.console_locale)
    base = ctx.cache.get("console_base", "/console")

    def url(path: str = "") -> str:
        return f"{base}/{path.lstrip('/')}"

    return env.get_template(template).render(base=base, url=url, now=ctx.now, **values)


def error_page(request: Request, status: int, message: str, errors: dict[str, str] | None = None) -> Response:
    """An error inside the console, in its layout (a plain page if even that fails)."""
    try:
        return page(request, "console/error.html", {"status": status, "message": message, "errors": errors or {}},
                    status)  # fmt: skip
    except Exception:  # the error page itself must never fail
        log.exception("console error page failed")
        return HTMLResponse(f"<h1>{status}</h1>", status_code=status)


def error_text(request: Request, exc: CRMError) -> str:
    """What *exc* says, in the page's language where it says it with marked texts.

    A message given with ``CRMError.of``, or a validation error's per-field
    messages (:func:`field_errors`); others as they are.
    """
    if exc.message is not None:
        describe = environments(crm_of(request)).get(language(request)).filters["describe"]
        return str(describe({"message": exc.message, "values": dict(exc.values), "terms": dict(exc.terms),
                             "text": str(exc)}))  # fmt: skip
    if isinstance(exc, ValidationError):

        def joined(errors: dict[str, str]) -> str:  # how ValidationError composes its text
            return "; ".join(text if field == "__all__" else f"{field}: {text}" for field, text in errors.items())

        if joined(exc.errors) == str(exc):  # not a message of its own
            return joined(field_errors(request, exc))
    return str(exc)


def field_errors(request: Request, exc: ValidationError) -> dict[str, str]:
    """Each refused field's message in the page's language.

    A message given with ``ValidationError.on`` is translated with its values;
    a plain one is looked up as it is (texts marked with ``N_`` where raised).
    """
    filters = environments(crm_of(request)).get(language(request)).filters
    describe, term = filters["describe"], filters["term"]
    return {field: str(describe(exc.messages[field])) if field in exc.messages else str(term(text))
            for field, text in exc.errors.items()}  # fmt: skip


async def _crm_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CRMError)
    status = exc.http_status if 400 <= exc.http_status < 500 else 500
    return error_page(request, status, error_text(request, exc) if status < 500 else SERVER_ERROR)


#: The console's own error messages (shown in the page's language by ``console/error.html``).
SERVER_ERROR = N_("Something went wrong on our side.")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("console request %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_page(request, 500, SERVER_ERROR)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_page(request, 404, N_("This page does not exist."))


class SecurityHeaders:
    """Headers on every console response: no framing, no inline or foreign scripts, no referrer leaks."""

    POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'self'")  # fmt: skip

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for name, value in ((b"content-security-policy", self.POLICY.encode()),
                                    (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                                    (b"referrer-policy", b"same-origin")):  # fmt: skip
                    if name not in names:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def console_app(crm: CRM) -> Starlette:
    """The staff console as its own Starlette app; ``crm.asgi_app()`` mounts it at ``/console``.

    Outside development it refuses to run with the default secret key: every
    page answers 503 with the reason, and no account is ever created by itself.
    """
    from starlette.middleware import Middleware

    from crmcore.console import views

    if crm.settings.secret_key == DEV_SECRET and crm.settings.environment != "development":

        async def refuse(request: Request) -> Response:
            return PlainTextResponse("the console needs a secret key: set CRMCORE_SECRET_KEY", status_code=503)

        app = Starlette(routes=[Route("/{path:path}", refuse, methods=["GET", "POST"])])
        app.state.crm = crm
        return app
    routes: list[BaseRoute] = [*views.routes(), Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static")]
    for group in crm.plugins.call("crm_console_routes", crm=crm):
        routes.extend(group)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={404: _not_found, CRMError: _crm_error, Exception: _server_error},
    )
    app.state.crm = crm
    return app


__all__ = [
    "base_path", "console_app", "crm_of", "error_page", "error_text", "formatter", "menu", "page", "panel_context",
    "render_panel", "staff", "translator",
]
