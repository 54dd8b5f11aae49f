"""The core's capture routes: tracked links, web forms and conversions.

- ``GET /r/<code>``: record a click on a short link, redirect (302).
- ``GET /r/s/<token>``: verify a signed link, record the contact's click, redirect;
  a tampered token answers 400 and an expired one 410, never a redirect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from crmcore.errors import NotFound
from crmcore.links import ClickInfo
from crmcore.signing import InvalidToken
from crmcore.web import crm_of, error_response

if TYPE_CHECKING:
    from crmcore.crm import CRM

#: Cookie holding the (signed) ids of a browser's anonymous clicks, claimed by its first form.
CLICK_COOKIE = "crm_clicks"
CLICK_COOKIE_PURPOSE = "click-cookie"
CLICK_COOKIE_DAYS = 90


def click_info(request: Request) -> ClickInfo:
    """The untrusted facts of a request: query values, referrer, client address, agent."""
    params = {k: v for k, v in request.query_params.items() if len(k) <= 40}
    return ClickInfo(
        params=params,
        referrer=request.headers.get("referer"),
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def cookie_touch_ids(request: Request) -> list[int]:
    """Ids of this browser's earlier anonymous clicks, from the signed cookie (empty if none or invalid)."""
    raw = request.cookies.get(CLICK_COOKIE)
    if not raw:
        return []
    crm = crm_of(request)
    try:
        ids = crm.signer.loads(CLICK_COOKIE_PURPOSE, raw, max_age=CLICK_COOKIE_DAYS * 86400)
    except InvalidToken:
        return []
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, int)][-10:]


async def short_link(request: Request) -> Response:
    """``GET /r/<code>``: record the click, remember it in a cookie, redirect."""
    crm = crm_of(request)
    code = request.path_params["code"]
    try:
        target = crm.links.follow(code, click_info(request))
    except NotFound as exc:
        return error_response(request, 404, str(exc))
    response = RedirectResponse(target.url, status_code=302)
    if target.touchpoint_id is not None:
        ids = [*cookie_touch_ids(request), target.touchpoint_id][-10:]
        response.set_cookie(
            CLICK_COOKIE, crm.signer.dumps(CLICK_COOKIE_PURPOSE, ids), max_age=CLICK_COOKIE_DAYS * 86400,
            httponly=True, samesite="lax", secure=request.url.scheme == "https",
        )  # fmt: skip
    response.headers["cache-control"] = "no-store"
    return response


async def signed_link(request: Request) -> Response:
    """``GET /r/s/<token>``: verify, record the contact's click, redirect; 400/410 otherwise."""
    crm = crm_of(request)
    try:
        target = crm.links.follow_signed(request.path_params["token"], click_info(request))
    except InvalidToken as exc:
        status = 410 if exc.expired else 400
        return error_response(request, status, str(exc))
    response = RedirectResponse(target.url, status_code=302)
    response.headers["cache-control"] = "no-store"
    return response


def routes(crm: CRM) -> list[BaseRoute]:
    """The capture routes of *crm*'s web app."""
    return [
        Route("/r/s/{token}", signed_link, methods=["GET", "HEAD"]),
        Route("/r/{code}", short_link, methods=["GET", "HEAD"]),
    ]
