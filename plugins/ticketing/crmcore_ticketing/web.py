"""Web routes under ``/ticketing``: the support form, the customer's status page, public articles.

A customer sees a ticket only after proving their email: they give the
tracking number and their address, and get a signed link (``crm.signer``,
purpose ``ticketing-status``) by email. The answer is the same whether or not
the pair matched, so the form tells nobody which tickets exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from crmcore.errors import NotFound, ValidationError
from crmcore.web import crm_of, error_response, render, wants_json
from crmcore.web.limits import RateLimiter

if TYPE_CHECKING:
    from crmcore.crm import CRM

STATUS_PURPOSE = "ticketing-status"


async def _fields(request: Request) -> dict[str, Any]:
    if "application/json" in request.headers.get("content-type", ""):
        data = await request.json()
        if not isinstance(data, dict):
            raise ValidationError({"__all__": "send a JSON object"})
        return data
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def routes(crm: CRM) -> list[BaseRoute]:
    """The plugin's routes, mounted at ``/ticketing``."""
    limiter = RateLimiter(limit=20, window=60)

    def limited(request: Request) -> bool:
        client = request.client.host if request.client else "unknown"
        return not limiter.allow(f"{request.url.path}:{client}")

    async def support_form(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "ticketing/support.html", {"values": {}, "errors": {}})
        if limited(request):
            return error_response(request, 429, "Too many requests; try again in a minute.")
        data = await _fields(request)
        try:
            ticket = await run_in_threadpool(_open_from_form, crm_of(request), data)
        except ValidationError as exc:
            if wants_json(request):
                raise
            return render(request, "ticketing/support.html", {"values": data, "errors": exc.errors}, 422)
        if wants_json(request):
            return JSONResponse({"number": ticket.number, "status": ticket.status}, status_code=201)
        return render(request, "ticketing/support_done.html", {"number": ticket.number}, 201)

    async def status_request(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "ticketing/status_request.html", {"sent": False, "errors": {}})
        if limited(request):
            return error_response(request, 429, "Too many requests; try again in a minute.")
        data = await _fields(request)
        await run_in_threadpool(_send_status_link, crm_of(request), data)
        message = "If that tracking number belongs to that email address, a link is on its way."
        if wants_json(request):
            return JSONResponse({"message": message}, status_code=202)
        return render(request, "ticketing/status_request.html", {"sent": True, "errors": {}}, 202)

    async def status_page(request: Request) -> Response:
        context = await run_in_threadpool(_status_context, crm_of(request), request.path_params["token"])
        if wants_json(request):
            return JSONResponse(
                {
                    "number": context["ticket"].number,
                    "status": context["ticket"].status,
                    "subject": context["ticket"].subject,
                    "messages": [
                        {"author": m.author_type, "body": m.body, "at": m.created_at.isoformat()}
                        for m in context["messages"]
                    ],
                }
            )
        return render(request, "ticketing/status.html", context)

    async def article_page(request: Request) -> Response:
        article = await run_in_threadpool(_published, crm_of(request), request.path_params["slug"])
        voted = request.query_params.get("voted") == "1"
        return render(request, "ticketing/article.html", {"article": article, "voted": voted})

    async def article_vote(request: Request) -> Response:
        if limited(request):
            return error_response(request, 429, "Too many requests; try again in a minute.")
        data = await _fields(request)
        answer = str(data.get("helpful", "")).lower()
        if answer not in ("yes", "no"):
            raise ValidationError({"helpful": "answer yes or no"})
        slug = request.path_params["slug"]
        from crmcore_ticketing import ticketing

        article = await run_in_threadpool(ticketing(crm_of(request)).kb.vote, slug, helpful=answer == "yes")
        if wants_json(request):
            return JSONResponse({"helpful_yes": article.helpful_yes, "helpful_no": article.helpful_no})
        return RedirectResponse(f"/ticketing/kb/{article.slug}?voted=1", status_code=303)

    async def kb_index(request: Request) -> Response:
        from crmcore_ticketing import ticketing

        query = request.query_params.get("q", "")[:200]
        support = ticketing(crm_of(request))
        if query:
            hits = await run_in_threadpool(support.kb.search, query)
            articles = [h.article for h in hits]
        else:
            articles = await run_in_threadpool(support.kb.list, status="published")
        return render(request, "ticketing/kb_index.html", {"articles": articles, "query": query})

    return [
        Mount("/ticketing", routes=[
            Route("/support", support_form, methods=["GET", "POST"]),
            Route("/status", status_request, methods=["GET", "POST"]),
            Route("/status/{token}", status_page),
            Route("/kb", kb_index),
            Route("/kb/{slug}", article_page),
            Route("/kb/{slug}/vote", article_vote, methods=["POST"]),
        ])
    ]  # fmt: skip


def _open_from_form(crm: CRM, data: dict[str, Any]) -> Any:
    from crmcore_ticketing import ticketing

    errors: dict[str, str] = {}
    for field in ("email", "subject", "message"):
        if not str(data.get(field) or "").strip():
            errors[field] = "is required"
    if errors:
        raise ValidationError(errors)
    return ticketing(crm).tickets.open(
        subject=str(data.get("subject")), body=str(data.get("message")), requester=str(data.get("email")),
        requester_name=str(data.get("name") or "")[:200] or None, channel="web",
        category=data.get("category") or None, by_agent=False,
    )  # fmt: skip


def _send_status_link(crm: CRM, data: dict[str, Any]) -> None:
    from crmcore.mail import MailMessage, queue_mail
    from crmcore.models import Contact
    from crmcore_ticketing.tickets import get_ticket, setting, support_address

    number, address = str(data.get("number") or "").strip(), str(data.get("email") or "").strip().lower()
    if not number or not address:
        raise ValidationError({k: "is required" for k, v in (("number", number), ("email", address)) if not v})
    if number.lstrip("#").isdigit():
        return  # tracking numbers only, never the guessable ids
    with crm.transaction() as ctx:
        try:
            ticket = get_ticket(ctx, number)
        except NotFound:
            return
        requester = ctx.session.get(Contact, ticket.requester_id)
        if requester is None or requester.email_normalized != address:
            return
        token = crm.signer.dumps(STATUS_PURPOSE, {"t": ticket.id, "e": address})
        url = f"{crm.settings.base_url.rstrip('/')}/ticketing/status/{token}"
        days = int(setting(crm, "status_link_days"))
        text = crm.templates.get_template("ticketing/status_link.txt").render(ticket=ticket, url=url, days=days)
        queue_mail(ctx, MailMessage(to=requester.email or address, subject=f"[{ticket.number}] Your request's status",
                                    text=text, sender=support_address(ctx)),
                   key=f"ticketing:status-link:{ticket.id}:{ctx.now:%Y%m%d%H%M}")  # fmt: skip


def _status_context(crm: CRM, token: str) -> dict[str, Any]:
    from sqlalchemy import select

    from crmcore.models import Contact
    from crmcore_ticketing.models import Message, Ticket
    from crmcore_ticketing.tickets import setting

    data = crm.signer.loads(STATUS_PURPOSE, token, max_age=int(setting(crm, "status_link_days")) * 86400)
    with crm.transaction() as ctx:
        ticket = ctx.session.get(Ticket, int(data["t"]))
        requester = ctx.session.get(Contact, ticket.requester_id) if ticket else None
        if ticket is None or requester is None or requester.email_normalized != data.get("e"):
            raise NotFound("this ticket is no longer available")
        messages = list(ctx.session.scalars(
            select(Message).where(Message.ticket_id == ticket.id, Message.public, Message.author_type != "system")
            .order_by(Message.created_at, Message.id)))  # fmt: skip
        return {"ticket": ticket, "messages": messages}


def _published(crm: CRM, slug: str) -> Any:
    from crmcore_ticketing import ticketing

    article = ticketing(crm).kb.get(slug)
    if article.status != "published":
        raise NotFound(f"no article {slug!r}")
    return article
