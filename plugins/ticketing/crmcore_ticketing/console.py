"""The ticketing plugin in the staff console: the queue with SLA badges, a ticket with its
reply/note composer, the contact page's tickets panel, "my day" deadlines at risk, search."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from crmcore.console import MenuEntry, Panel, SearchHit, base_path, page, render_panel, staff
from crmcore.errors import ValidationError
from crmcore.i18n import N_

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM
    from crmcore.models import Contact, User
    from crmcore_ticketing.models import Ticket

#: A running deadline closer than this is "at risk".
AT_RISK = timedelta(hours=2)
OPEN_STATUSES = ("new", "open", "pending", "on_hold")


def sla_badge(ticket: Ticket, now: datetime) -> tuple[str, str]:
    """``(css class, label)`` of a ticket's SLA state: breached, at risk, on track, or none."""
    due = ticket.next_due_at
    if due is None:
        return ("", "no SLA")
    if due <= now:
        return ("bad", "breached")
    if due - now <= AT_RISK:
        return ("warn", "at risk")
    return ("ok", "on track")


def _crm(request: Request) -> CRM:
    crm: CRM = request.app.state.crm
    return crm


@staff("ticketing.view")
def queue(request: Request, form: FormData | None) -> Response:
    """Open tickets, the most urgent deadline first; ``?mine=1`` for the ones assigned to me."""
    from crmcore_ticketing import ticketing

    crm = _crm(request)
    mine = request.query_params.get("mine") == "1"
    tickets = ticketing(crm).tickets.list(status=OPEN_STATUSES, assignee=request.state.user.id if mine else None,
                                          limit=200)  # fmt: skip
    far = datetime.max.replace(tzinfo=crm.clock.now().tzinfo)
    tickets.sort(key=lambda t: (t.next_due_at or far, t.id))
    now = crm.clock.now()
    names = crm.contacts.names(t.requester_id for t in tickets)
    return page(request, "ticketing/console/queue.html", {
        "tickets": tickets, "now": now, "badge": sla_badge, "names": names, "mine": mine,
    })  # fmt: skip


@staff("ticketing.view")
def ticket_page(request: Request, form: FormData | None) -> Response:
    """One ticket: its thread, SLA deadlines and the reply/note composer."""
    from crmcore_ticketing import ticketing

    crm = _crm(request)
    support = ticketing(crm).tickets
    ticket = support.get(request.path_params["number"])
    return page(request, "ticketing/console/ticket.html", {
        "ticket": ticket, "messages": support.messages(ticket.id), "sla": support.sla(ticket.id),
        "now": crm.clock.now(), "badge": sla_badge, "requester": crm.contacts.names([ticket.requester_id]),
    })  # fmt: skip


@staff("ticketing.reply")
def answer(request: Request, form: FormData | None) -> Response:
    """Send a public reply or add an internal note, optionally changing the status."""
    from crmcore_ticketing import ticketing

    support = ticketing(_crm(request)).tickets
    number = request.path_params["number"]
    body = str(form.get("body") or "").strip() if form is not None else ""
    if not body:
        raise ValidationError({"body": N_("write a reply or a note")})
    status = str(form.get("status") or "") if form is not None else ""
    if form is not None and form.get("kind") == "note":
        support.note(number, body)
    else:
        support.reply(number, body, status=status or None)
    return RedirectResponse(f"{base_path(request)}/tickets/{number}", status_code=303)


def routes(crm: CRM) -> list[BaseRoute]:
    """The console pages of the ticketing plugin."""
    return [
        Route("/tickets", queue, name="ticketing.console.queue"),
        Route("/tickets/{number}", ticket_page, name="ticketing.console.ticket"),
        Route("/tickets/{number}/answer", answer, methods=["POST"]),
    ]


def menu() -> list[MenuEntry]:
    """The queue in the console's menu, for users who may see tickets."""
    return [MenuEntry(label="Tickets", path="tickets", permission="ticketing.view", order=40)]


def _list_html(ctx: HookContext, tickets: list[Ticket]) -> str:
    return render_panel(ctx, "ticketing/console/_list.html", tickets=tickets, badge=sla_badge)


def contact_panels(contact: Contact, ctx: HookContext) -> list[Panel]:
    """The contact's tickets, newest first, on their console page."""
    from crmcore import permissions
    from crmcore_ticketing.models import Ticket
    from crmcore_ticketing.tickets import ticket_reach

    if not permissions.has(ctx, "ticketing.view"):
        return []
    query = select(Ticket).where(Ticket.requester_id == contact.id).order_by(Ticket.created_at.desc()).limit(20)
    reach = ticket_reach(ctx)
    tickets = list(ctx.session.scalars(query.where(reach) if reach is not None else query))
    return [Panel(title="Tickets", html=_list_html(ctx, tickets), order=50)]


def my_day(user: User, ctx: HookContext) -> list[Panel]:
    """Running SLA deadlines breached or due within two hours, for me or unassigned."""
    from crmcore import permissions
    from crmcore_ticketing.models import Ticket
    from crmcore_ticketing.tickets import ticket_reach

    if not permissions.has(ctx, "ticketing.view"):
        return []
    query = (
        select(Ticket)
        .where(Ticket.next_due_at.is_not(None), Ticket.next_due_at <= ctx.now + AT_RISK,
               Ticket.status.in_(OPEN_STATUSES), or_(Ticket.assignee_id == user.id, Ticket.assignee_id.is_(None)))
        .order_by(Ticket.next_due_at)
        .limit(30)
    )  # fmt: skip
    reach = ticket_reach(ctx)
    tickets = list(ctx.session.scalars(query.where(reach) if reach is not None else query))
    return [Panel(title="SLA deadlines at risk", html=_list_html(ctx, tickets), order=20)]


def search(text: str, ctx: HookContext) -> list[SearchHit]:
    """Tickets by tracking number or subject."""
    from crmcore import permissions
    from crmcore_ticketing.models import Ticket
    from crmcore_ticketing.tickets import ticket_reach

    if not permissions.has(ctx, "ticketing.view"):
        return []
    pattern = f"%{text.lower()}%"
    query = (select(Ticket).where(or_(Ticket.number.ilike(pattern), Ticket.subject.ilike(pattern)))
             .order_by(Ticket.created_at.desc()).limit(20))  # fmt: skip
    reach = ticket_reach(ctx)
    rows: list[Any] = list(ctx.session.scalars(query.where(reach) if reach is not None else query))
    return [SearchHit(kind="Tickets", title=f"{t.number} {t.subject}", path=f"tickets/{t.number}",
                      detail=t.status) for t in rows]  # fmt: skip
