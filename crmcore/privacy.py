"""The core's privacy hooks and pages: double opt-in for web forms.

Registered as part of the core plugin (imported by :mod:`crmcore.builtin`); the web
stack is imported only when the routes are built.
The confirmation link opens a page with one button: the consent is granted
only by that POST, so mail scanners that prefetch links never confirm anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.hooks import hookimpl
from crmcore.services.base import get_contact

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from crmcore.context import HookContext
    from crmcore.crm import CRM


@hookimpl(trylast=True)
def crm_form_consent_given(
    contact_id: int, form_slug: str, purposes: list[str], proof: dict[str, Any], ctx: HookContext
) -> None:
    """Store the form's consent as pending and mail the double opt-in link."""
    from crmcore.services.consent import request_in

    request_in(ctx, get_contact(ctx, contact_id), purposes, proof, form_slug=form_slug)


async def _confirm_page(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from crmcore.services.consent import CONFIRM_MAX_AGE_SECONDS, CONFIRM_PURPOSE
    from crmcore.web import crm_of, render

    crm = crm_of(request)
    token = request.path_params["token"]
    if request.method == "GET":
        crm.signer.loads(CONFIRM_PURPOSE, token, max_age=CONFIRM_MAX_AGE_SECONDS)  # a bad link fails here
        return render(request, "core/consent_confirm.html", {"confirmed": False})
    ip = request.client.host if request.client else None
    await run_in_threadpool(crm.consent.confirm, token, ip=ip)
    return render(request, "core/consent_confirm.html", {"confirmed": True})


def consent_routes(crm: CRM) -> list[BaseRoute]:
    """``/consent/confirm/<token>``: GET shows the button, POST confirms."""
    from starlette.routing import Route

    return [Route("/consent/confirm/{token}", _confirm_page, methods=["GET", "POST"])]
