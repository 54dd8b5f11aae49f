"""Console sign-in: signed session cookies, CSRF tokens, the login rate limit, safe redirects.

A session is a cookie signed with ``crm.signer`` (purpose ``console-session``)
holding the user id, the user's *session epoch* and a CSRF token; it expires
after ``console_session_hours``. Disabling a user, changing their password or
signing out bumps the epoch, so every older cookie stops working at its next
request. Cookies are HttpOnly, SameSite=Lax and Secure outside development.
"""

from __future__ import annotations

import functools
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from crmcore.signing import InvalidToken

if TYPE_CHECKING:
    from sqlalchemy import Select
    from starlette.requests import Request
    from starlette.responses import Response

    from crmcore.crm import CRM
    from crmcore.models import Role, User
    from crmcore.permissions import Grants

SESSION_COOKIE = "crm_console"
LOGIN_CSRF_COOKIE = "crm_console_login"
LANGUAGE_COOKIE = "crm_lang"
SESSION_PURPOSE = "console-session"
LOGIN_PURPOSE = "console-login"


@attrs.frozen(kw_only=True)
class Session:
    """A verified console session."""

    user_id: int
    epoch: int
    csrf: str


def secure_cookies(crm: CRM) -> bool:
    """Whether console cookies carry ``Secure`` (HTTPS only)."""
    choice = crm.settings.console_secure_cookies
    if choice == "auto":
        return crm.settings.environment != "development"
    return choice == "true"


def cookie_path(request: Request) -> str:
    """The console's URL prefix (where it is mounted), the path cookies are scoped to."""
    return str(request.scope.get("root_path", "")) or "/"


def set_cookie(crm: CRM, request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    """Set a console cookie: HttpOnly, SameSite=Lax, Secure outside development."""
    response.set_cookie(name, value, max_age=max_age, path=cookie_path(request), httponly=True,
                        samesite="lax", secure=secure_cookies(crm))  # fmt: skip


def clear_cookie(crm: CRM, request: Request, response: Response, name: str) -> None:
    """Remove a console cookie."""
    response.delete_cookie(name, path=cookie_path(request), httponly=True, samesite="lax",
                           secure=secure_cookies(crm))  # fmt: skip


def issue_session(crm: CRM, user: User) -> tuple[str, Session]:
    """A new session cookie value for *user*."""
    session = Session(user_id=user.id, epoch=user.session_epoch or 0, csrf=secrets.token_urlsafe(24))
    token = crm.signer.dumps(SESSION_PURPOSE, {"u": session.user_id, "e": session.epoch, "c": session.csrf})
    return token, session


def read_session(crm: CRM, token: str | None) -> Session | None:
    """The session in a cookie value, or None when missing, forged or expired."""
    if not token:
        return None
    try:
        data = crm.signer.loads(SESSION_PURPOSE, token, max_age=crm.settings.console_session_hours * 3600)
    except InvalidToken:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("c"), str):
        return None
    return Session(user_id=data["u"], epoch=int(data.get("e", 0)), csrf=data["c"])


def session_user(crm: CRM, session: Session) -> User | None:
    """The session's user when still active, allowed in the console, and the epoch matches."""
    found = session_grants(crm, session)
    return found[0] if found else None


def session_grants(crm: CRM, session: Session) -> tuple[User, Grants] | None:
    """The session's user and their grants, or None when the session no longer counts.

    One query (built once) reads the user, their role and whether they hold
    permissions of their own or manage teams (most do neither, and those lists
    are then not read); inside a page's unit of work (a GET) it joins it.
    """
    from crmcore import permissions

    with crm.transaction(readonly=True) as ctx:
        row = ctx.session.execute(_session_query(), {"user_id": session.user_id}).first()
        if row is None:
            return None
        user, role, has_extra, manages = row
        if not user.active or (user.session_epoch or 0) != session.epoch:
            return None
        permissions.definition_of(ctx, user.role, role)
        grants = permissions.grants_of(ctx, user, has_extra=bool(has_extra), manages=bool(manages))
        if not grants.allows("console.access"):
            return None
    return user, grants


@functools.cache
def _session_query() -> Select[User, Role, bool, bool]:
    """The user of a session, their role row, and whether they hold own permissions or manage teams."""
    from sqlalchemy import bindparam, exists, select

    from crmcore.models import Role, TeamManager, User, UserPermission

    return (select(User, Role, exists().where(UserPermission.user_id == User.id),
                   exists().where(TeamManager.user_id == User.id))
            .outerjoin(Role, Role.name == User.role).where(User.id == bindparam("user_id")))  # fmt: skip


def login_csrf(crm: CRM, request: Request) -> tuple[str, str | None]:
    """The sign-in form's CSRF token, and the cookie value to set when it is new."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if cookie:
        try:
            token = crm.signer.loads(LOGIN_PURPOSE, cookie, max_age=3600)
            if isinstance(token, str):
                return token, None
        except InvalidToken:
            pass
    token = secrets.token_urlsafe(24)
    return token, crm.signer.dumps(LOGIN_PURPOSE, token)


def tokens_match(expected: str | None, given: Any) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(expected) and isinstance(given, str) and secrets.compare_digest(str(expected), given)


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after sign-in: a path inside the console, never another site."""
    home = cookie_path(request).rstrip("/") + "/"
    if not target or not isinstance(target, str) or len(target) > 2000:
        return home
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return home
    if not (target == home.rstrip("/") or target.startswith(home)):
        return home
    return target


def client_address(request: Request) -> str:
    """The client's address (the peer; put a proxy's header handling in front if needed)."""
    return request.client.host if request.client else "unknown"
