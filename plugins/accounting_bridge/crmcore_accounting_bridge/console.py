"""The accounting bridge in the staff console: a contact's invoices and credit notes as a panel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from crmcore import permissions
from crmcore.console import Panel, render_panel

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.models import Contact

#: Invoices shown on the contact page, newest first.
PANEL_INVOICES = 10


def contact_panels(contact: Contact, ctx: HookContext) -> list[Panel]:
    """The contact's latest invoices and credit notes: number, dates, total, what is still owed, overdue."""
    from crmcore_accounting_bridge.journal import local_today
    from crmcore_accounting_bridge.models import Invoice

    if not permissions.has(ctx, "accounting.view"):
        return []
    invoices = ctx.session.scalars(
        select(Invoice).where(Invoice.contact_id == contact.id)
        .order_by(Invoice.issued_on.desc(), Invoice.id.desc()).limit(PANEL_INVOICES)
    ).all()  # fmt: skip
    html = render_panel(ctx, "accounting_bridge/console/_invoices.html", invoices=invoices, today=local_today(ctx))
    return [Panel(title="Invoices", html=html, order=70)]
