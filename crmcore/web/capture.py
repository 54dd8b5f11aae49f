"""The core's capture routes: tracked links, web forms and conversions.

- ``GET /r/<code>``: record a click on a short link, redirect (302).
- ``GET /r/s/<token>``: verify a signed link, record the contact's click, redirect;
  a tampered token answers 400 and an expired one 410, never a redirect.
- ``GET /forms/<slug>``: the embeddable HTML form; ``POST /forms/<slug>``: a
  submission (urlencoded, multipart or JSON), answered 303 to the thank-you
  page or 201 JSON; 422 with per-field messages, 403 for a foreign origin,
  429 over the per-address rate limit, 413 for an oversized body.
- ``POST /conversions``: a host shop's conversion, signed with HMAC-SHA256.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from crmcore.errors import NotFound, ValidationError
from crmcore.forms import HONEYPOT, TRACKING_FIELDS, SubmissionMeta
from crmcore.links import ClickInfo
from crmcore.signing import InvalidToken
from crmcore.validation import clean_text
from crmcore.web import crm_of, error_response, render, wants_json
from crmcore.web.limits import RateLimiter

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore.models import WebForm

T = TypeVar("T")

#: Cookie holding the (signed) ids of a browser's anonymous clicks, claimed by its first form.
CLICK_COOKIE = "crm_clicks"
CLICK_COOKIE_PURPOSE = "click-cookie"
CLICK_COOKIE_DAYS = 90
#: Most fields a submission may have.
MAX_FIELDS = 200


_WRITE_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


async def _write(crm: CRM, func: Callable[..., T], *args: Any) -> T:
    """Run a writing service call in the thread pool; on SQLite one at a time per process.

    SQLite has one writer at a time; threads racing for its lock back off in
    sleeps of up to 100 ms (its busy handler), so under load a queue in
    Python is far faster than letting them collide.
    """
    if crm.engine.dialect.name != "sqlite":
        return await run_in_threadpool(func, *args)
    lock = _WRITE_LOCKS.setdefault(crm, threading.Lock())

    def serialized() -> T:
        with lock:
            return func(*args)

    return await run_in_threadpool(serialized)


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
    if request.method == "HEAD":  # link previews and mail scanners: answered, not counted as clicks
        try:
            url = await run_in_threadpool(crm.links.destination, code)
        except NotFound as exc:
            return error_response(request, 404, str(exc))
        return RedirectResponse(url, status_code=302)
    try:
        target = await _write(crm, crm.links.follow, code, click_info(request))
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
    if request.method == "HEAD":  # link previews and mail scanners: answered, not counted as clicks
        try:
            url = crm.links.signed_destination(request.path_params["token"])
        except InvalidToken as exc:
            return error_response(request, 410 if exc.expired else 400, str(exc))
        return RedirectResponse(url, status_code=302)
    try:
        target = await _write(crm, crm.links.follow_signed, request.path_params["token"], click_info(request))
    except InvalidToken as exc:
        status = 410 if exc.expired else 400
        return error_response(request, status, str(exc))
    response = RedirectResponse(target.url, status_code=302)
    response.headers["cache-control"] = "no-store"
    return response


def _form_action(request: Request, slug: str) -> str:
    return f"{crm_of(request).settings.base_url.rstrip('/')}/forms/{slug}"


def _hidden_tracking(request: Request) -> dict[str, str]:
    """Tracking values of the page's query string, carried as hidden fields (bad ones dropped)."""
    hidden: dict[str, str] = {}
    for name in TRACKING_FIELDS:
        raw = request.query_params.get(name)
        if raw:
            try:
                text = clean_text(raw, name, 255)
            except ValidationError:
                continue
            if text:
                hidden[name] = text
    if "page_url" not in hidden and request.headers.get("referer"):  # the page embedding the form
        with contextlib.suppress(ValidationError):
            hidden["page_url"] = clean_text(request.headers["referer"], "page_url", 2000) or ""
    return hidden


def _render_form(
    request: Request, form: Any, values: dict[str, Any], errors: dict[str, str], hidden: dict[str, str], status: int
) -> Response:
    field_names = {f["name"] for f in form.fields}
    response = render(
        request, "capture/form.html",
        {"form": form, "values": values, "errors": errors, "hidden": hidden,
         "action": _form_action(request, form.slug), "field_names": field_names},
        status,
    )  # fmt: skip
    response.headers["cache-control"] = "no-store"
    return response


def _origin_of(request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin:
        return origin.lower().rstrip("/")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}".lower()
    return None


def _origin_allowed(request: Request, form: Any) -> bool:
    """Browsers name the page that posts; only the form's allowed origins (and our own) may."""
    if not form.allowed_origins:
        return True
    origin = _origin_of(request)
    if origin is None:  # not a browser (a server posting JSON): nothing to check
        return True
    own = urlsplit(crm_of(request).settings.base_url)
    return origin in form.allowed_origins or origin == f"{own.scheme}://{own.netloc}".lower()


def _cors(request: Request, form: Any, response: Response) -> Response:
    origin = request.headers.get("origin")
    if origin and form.allowed_origins and origin.lower().rstrip("/") in form.allowed_origins:
        response.headers["access-control-allow-origin"] = origin
        response.headers["access-control-allow-credentials"] = "true"
        response.headers["vary"] = "Origin"
    return response


async def _read_body(request: Request) -> dict[str, Any]:
    """The submission as a dict of field to value; 415 for other types, 400 for broken JSON."""
    data: dict[str, Any]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        try:
            parsed = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise BadBody(400, "the body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise BadBody(422, "the body must be a JSON object of field names to values")
        return parsed
    if content_type == "application/x-www-form-urlencoded":
        # What Starlette's form parser makes of it (fields split on "&", "+" and %-escapes decoded
        # as UTF-8 over Latin-1 text), at a tenth of its cost: the whole body is already in memory.
        try:
            pairs = parse_qsl((await request.body()).decode("latin-1"), keep_blank_values=True,
                              max_num_fields=MAX_FIELDS)  # fmt: skip
        except ValueError:  # more than MAX_FIELDS fields
            raise BadBody(400, "the form body could not be read") from None
        data = {}
        for key, value in pairs:
            data.setdefault(key, value)  # a repeated field counts once: its first value
        return data
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=5, max_fields=MAX_FIELDS)
        except Exception:  # malformed multipart, too many fields: the client's fault
            raise BadBody(400, "the form body could not be read") from None
        data = {}
        for key, item in form.multi_items():
            if isinstance(item, UploadFile):
                raise BadBody(422, "files are not accepted")
            data.setdefault(key, item)
        return data
    raise BadBody(415, "send application/x-www-form-urlencoded, multipart/form-data or application/json")


class BadBody(Exception):
    """A body that cannot be read as a submission."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _form(crm: CRM, slug: str) -> WebForm:
    """The form *slug*: from memory when fresh, else read in the thread pool (NotFound if none)."""
    form = crm.forms.remembered(slug)
    return form if form is not None else await run_in_threadpool(crm.forms.cached, slug)


def routes(crm: CRM) -> list[BaseRoute]:
    """The capture routes of *crm*'s web app."""
    limiter = RateLimiter(crm.settings.form_rate_per_minute, 60.0)

    async def form_page(request: Request) -> Response:
        form = await _form(crm_of(request), request.path_params["slug"])
        return _render_form(request, form, {}, {}, _hidden_tracking(request), 200)

    async def form_options(request: Request) -> Response:
        form = await _form(crm_of(request), request.path_params["slug"])
        response = Response(status_code=204)
        if _cors(request, form, response).headers.get("access-control-allow-origin"):
            response.headers["access-control-allow-methods"] = "POST"
            response.headers["access-control-allow-headers"] = "content-type"
            response.headers["access-control-max-age"] = "600"
        return response

    async def form_submit(request: Request) -> Response:
        crm = crm_of(request)
        slug = request.path_params["slug"]
        form = await _form(crm, slug)
        ip = request.client.host if request.client else "unknown"
        if not _origin_allowed(request, form):
            return error_response(request, 403, "this site may not post to this form")
        if not limiter.allow(f"{ip}"):
            response = error_response(request, 429, "too many submissions; try again in a minute")
            response.headers["retry-after"] = "60"
            return response
        try:
            data = await _read_body(request)
        except BadBody as exc:
            return _cors(request, form, error_response(request, exc.status, str(exc)))
        meta = SubmissionMeta(
            ip=ip, referrer=request.headers.get("referer"),
            query={k: v for k, v in request.query_params.items() if len(k) <= 40},
            touch_ids=cookie_touch_ids(request),
        )  # fmt: skip
        as_json = wants_json(request)
        try:
            result = await _write(crm, crm.forms.submit, slug, data, meta)
        except ValidationError as exc:
            if as_json:
                return _cors(request, form, error_response(request, 422, str(exc), exc.errors))
            values = {k: v for k, v in data.items() if isinstance(v, str) and k != HONEYPOT}
            hidden = {k: values[k] for k in TRACKING_FIELDS if k in values and k not in exc.errors}
            return _render_form(request, form, values, exc.errors, hidden, 422)
        if as_json:
            return _cors(request, form, JSONResponse({"ok": True}, status_code=201))
        target = form.thank_you_url or f"{_form_action(request, slug)}/thanks"
        response = RedirectResponse(target, status_code=303)
        if result.contact_id is not None and request.cookies.get(CLICK_COOKIE):
            response.delete_cookie(CLICK_COOKIE)  # its clicks now belong to the contact
        return response

    async def conversions(request: Request) -> Response:
        crm = crm_of(request)
        body = await request.body()
        await run_in_threadpool(
            crm.conversions.verify, request.headers.get("x-crm-timestamp"), request.headers.get("x-crm-signature"), body
        )
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error_response(request, 400, "the body is not valid JSON")
        if not isinstance(data, dict):
            return error_response(request, 422, "the body must be a JSON object")
        result = await _write(crm, crm.conversions.record, data)
        return JSONResponse(
            {"ok": True, "conversion_id": result.touchpoint_id, "duplicate": result.duplicate},
            status_code=200 if result.duplicate else 201,
        )

    async def thanks(request: Request) -> Response:
        form = await _form(crm_of(request), request.path_params["slug"])
        return render(request, "capture/thanks.html", {"form": form})

    return [
        Route("/r/s/{token}", signed_link, methods=["GET", "HEAD"]),
        Route("/r/{code}", short_link, methods=["GET", "HEAD"]),
        Route("/forms/{slug}", form_page, methods=["GET", "HEAD"]),
        Route("/forms/{slug}", form_submit, methods=["POST"]),
        Route("/forms/{slug}", form_options, methods=["OPTIONS"]),
        Route("/forms/{slug}/thanks", thanks, methods=["GET", "HEAD"]),
        Route("/conversions", conversions, methods=["POST"]),
    ]
