"""The ASGI app (Starlette): ``crm.asgi_app()``, which a host can mount anywhere.

Plugins add routes through ``crm_register_routes``; the staff console
(:mod:`crmcore.console`) is mounted at ``/console`` unless ``console_enabled``
is false (a host with its own UI leaves it out, or mounts
``crmcore.console.console_app(crm)`` elsewhere). Errors are answered as
JSON for JSON clients and as a small HTML page otherwise; a CRMError keeps its
status (422 with per-field messages for validation), anything else is a 500
with no details shown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crmcore.errors import CRMError, ValidationError
from crmcore.web.limits import BodySizeLimit

if TYPE_CHECKING:
    from crmcore.crm import CRM

log = logging.getLogger("crmcore.web")


def create_app(crm: CRM, *, max_body_bytes: int = 1_000_000) -> Starlette:
    """Build the web app of *crm*: the core's routes plus every plugin's."""
    routes: list[BaseRoute] = [Route("/healthz", _health)]
    for group in crm.plugins.call("crm_register_routes", crm=crm):
        routes.extend(group)
    if crm.settings.console_enabled:
        from starlette.routing import Mount

        from crmcore.console import console_app

        routes.append(Mount("/console", app=console_app(crm)))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BodySizeLimit, max_bytes=max_body_bytes)],
        exception_handlers={CRMError: _crm_error, Exception: _server_error},
    )
    app.state.crm = crm
    return app


def crm_of(request: Request) -> CRM:
    """The CRM serving *request*."""
    crm: CRM = request.app.state.crm
    return crm


def wants_json(request: Request) -> bool:
    """True when the client sent or asked for JSON."""
    accept = request.headers.get("accept", "")
    content_type = request.headers.get("content-type", "")
    return "application/json" in content_type or ("application/json" in accept and "text/html" not in accept)


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    """Render a trusted template (autoescaped) into an HTML response."""
    body = crm_of(request).templates.get_template(template).render(request=request, **(context or {}))
    return HTMLResponse(body, status_code=status)


def error_response(request: Request, status: int, message: str, errors: dict[str, str] | None = None) -> Response:
    """An error in the client's language: JSON ``{"error", "errors"}`` or the error page."""
    if wants_json(request):
        return JSONResponse({"error": message, "errors": errors or {}}, status_code=status)
    try:
        return render(request, "core/error.html", {"status": status, "message": message, "errors": errors or {}},
                      status)  # fmt: skip
    except Exception:  # the error page itself must never fail
        return HTMLResponse(f"<h1>{status}</h1>", status_code=status)


async def _crm_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CRMError)
    status = exc.http_status if 400 <= exc.http_status < 500 else 500
    if status == 500:
        log.error("request %s %s failed: %s", request.method, request.url.path, exc)
        return error_response(request, 500, "Something went wrong on our side.")
    errors = exc.errors if isinstance(exc, ValidationError) else None
    return error_response(request, status, str(exc), errors)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "Something went wrong on our side.")


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


__all__ = ["create_app", "crm_of", "error_response", "render", "wants_json"]
