"""Web routes under ``/email``: unsubscribe (a page, and RFC 8058 one-click POST) and the open pixel.

Both take signed tokens (``crm.signer``); an invalid or tampered token gets a
clear 400 page for unsubscribes and the same transparent image for the pixel
(a broken image in a mail client helps nobody), recording nothing.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from crmcore.signing import InvalidToken
from crmcore.web import crm_of, render
from crmcore_email_marketing.tokens import read_open, read_unsubscribe

if TYPE_CHECKING:
    from crmcore.crm import CRM

#: A transparent 1×1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def routes(crm: CRM) -> list[BaseRoute]:
    """The plugin's public routes."""
    return [
        Route("/email/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/email/o/{token}.gif", open_pixel, methods=["GET"]),
    ]


async def unsubscribe(request: Request) -> Response:
    """GET: a page with one button (link scanners fetch links; they must not unsubscribe anybody).
    POST: unsubscribe at once — the button, or a mail client's one-click ``List-Unsubscribe-Post``."""
    from crmcore_email_marketing import email_marketing

    crm = crm_of(request)
    contact_id, campaign_id = read_unsubscribe(crm, request.path_params["token"])  # InvalidToken: a 400 page
    if request.method == "GET":
        return render(request, "email_marketing/unsubscribe.html", {"action": request.url.path, "email": None})
    form = await request.form()
    source = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "link"
    await run_in_threadpool(email_marketing(crm).suppressions.unsubscribe, contact_id, campaign_id, source=source)
    return render(request, "email_marketing/unsubscribed.html")


async def open_pixel(request: Request) -> Response:
    """Record an open and answer with a transparent image that no cache keeps."""
    from crmcore_email_marketing import email_marketing

    crm = crm_of(request)
    try:
        campaign_id, contact_id = read_open(crm, request.path_params["token"])
    except InvalidToken:
        pass
    else:
        await run_in_threadpool(email_marketing(crm).tracking.record_open, campaign_id, contact_id)
    return Response(PIXEL, media_type="image/gif",
                    headers={"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0"})  # fmt: skip
