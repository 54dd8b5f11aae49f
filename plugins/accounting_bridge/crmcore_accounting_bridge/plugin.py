"""The accounting_bridge plugin's hook implementations (entry point ``accounting_bridge``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmcore import hookimpl
from crmcore.i18n import N_
from crmcore.plugins import PluginInfo
from crmcore_accounting_bridge import hookspecs

if TYPE_CHECKING:
    from types import ModuleType

    import click
    from sqlalchemy import Select

    from crmcore.console import Panel
    from crmcore.context import HookContext
    from crmcore.demo.simulation import DemoDay
    from crmcore.events import OpportunityClosed, PurchaseRecorded
    from crmcore.models import Contact
    from crmcore.registry import JobHandler, PeriodicJob, PermissionSpec, SettingSpec
    from crmcore.reports import Report, ReportQuery
    from crmcore.services.timeline import TimelineCursor
    from crmcore_accounting_bridge.connectors import Connector

HERE = Path(__file__).resolve().parent
plugin_info = PluginInfo(hookspecs=(hookspecs,))

#: Timeline keys of invoices and payments (the order of items sharing a timestamp).
INVOICE_KEY = "accounting_bridge.invoice"
PAYMENT_KEY = "accounting_bridge.payment"
#: The labels of the plugin's timeline kinds, for the console's catalogs.
TIMELINE_KINDS = (N_("invoice"), N_("credit_note"), N_("payment"))


@hookimpl
def crm_register_settings() -> list[SettingSpec]:
    """Automatic invoicing, rounding, taxes, payment terms, the chart of accounts, connectors."""
    from crmcore_accounting_bridge.config import setting_specs

    return setting_specs()


@hookimpl
def crm_demo_day(day: DemoDay) -> None:
    """The day's purchases invoiced; customers pay (some late, a few overpay, some never)."""
    from crmcore_accounting_bridge.demo import simulate

    simulate(day)


@hookimpl
def crm_register_permissions() -> list[PermissionSpec]:
    """See invoices and balances; issue invoices and credit notes; keep the books."""
    from crmcore.registry import PermissionSpec

    return [
        PermissionSpec(name="accounting.view", description="See invoices, balances and the journal",
                       roles=("rep", "agent", "manager")),
        PermissionSpec(name="accounting.invoice", description="Issue invoices and credit notes",
                       roles=("manager",)),
        PermissionSpec(name="accounting.books", description="Record payments, post and reverse entries, export "
                       "the books", roles=()),
    ]  # fmt: skip


@hookimpl
def crm_contact_panels(contact: Contact, ctx: HookContext) -> list[Panel]:
    """The contact's latest invoices on their console page (``accounting.view``)."""
    from crmcore_accounting_bridge.console import contact_panels

    return contact_panels(contact, ctx)


@hookimpl
def crm_register_models() -> list[ModuleType]:
    """The plugin's tables, imported only when migrations or a schema check need them."""
    from crmcore_accounting_bridge import models

    return [models]


@hookimpl
def crm_register_migrations() -> list[Path]:
    """The plugin's own Alembic branch, ``accounting_bridge``."""
    return [HERE / "migrations"]


@hookimpl
def crm_register_templates() -> list[Path]:
    """Templates under ``accounting_bridge/``."""
    return [HERE / "templates"]


@hookimpl
def crm_register_jobs() -> list[JobHandler | PeriodicJob]:
    """Connector pushes and the daily overdue check."""
    from crmcore_accounting_bridge import connectors, payments

    return [*connectors.registrations(), *payments.registrations()]


@hookimpl
def crm_register_commands(cli: click.Group) -> None:
    """``crm accounting``."""
    from crmcore_accounting_bridge.cli import make_group

    cli.add_command(make_group())


@hookimpl
def crm_register_reports() -> list[Report]:
    """Invoiced revenue, receivables ageing, days to pay."""
    from crmcore_accounting_bridge.reports import registered_reports

    return registered_reports()


@hookimpl
def crm_register_accounting_connectors() -> list[Connector]:
    """The file-drop connector (Beancount and ledger include files)."""
    from crmcore_accounting_bridge.connectors import FileDropConnector

    return [FileDropConnector()]


@hookimpl
def crm_opportunity_won(event: OpportunityClosed, ctx: HookContext) -> None:
    """Invoice a won opportunity when ``auto_invoice`` is ``won`` or ``both`` (once per sale)."""
    from crmcore_accounting_bridge.config import Config
    from crmcore_accounting_bridge.invoices import already_invoiced_sale, invoice_opportunity

    if Config.of(ctx.crm).auto_invoice not in ("won", "both") or event.contact_id is None or event.amount <= 0:
        return
    if not already_invoiced_sale(ctx, opportunity_id=event.opportunity_id):
        invoice_opportunity(ctx, event.opportunity_id)


@hookimpl
def crm_purchase_recorded(event: PurchaseRecorded, ctx: HookContext) -> None:
    """Invoice a recorded purchase when ``auto_invoice`` is ``purchase`` or ``both`` (once per sale)."""
    from crmcore.models import Purchase
    from crmcore_accounting_bridge.config import Config
    from crmcore_accounting_bridge.invoices import already_invoiced_sale, invoice_purchase

    if Config.of(ctx.crm).auto_invoice not in ("purchase", "both"):
        return
    purchase = ctx.session.get(Purchase, event.purchase_id)
    if purchase is not None and not already_invoiced_sale(ctx, opportunity_id=purchase.opportunity_id):
        invoice_purchase(ctx, event.purchase_id)


@hookimpl
def crm_contact_details(contact: Contact, ctx: HookContext) -> dict[str, Any] | None:
    """``open_balance``, ``customer_credit`` and ``overdue_invoices`` on ``crm contact show``."""
    from crmcore_accounting_bridge.journal import balance_in

    found = balance_in(ctx, contact.id)
    return found if any(found.values()) else None


@hookimpl
def crm_contact_timeline(
    contact: Contact, cursor: TimelineCursor | None, limit: int, ctx: HookContext
) -> list[dict[str, Any]]:
    """Invoices, credit notes and payments on the contact's timeline (for users holding ``accounting.view``)."""
    from sqlalchemy import select

    from crmcore import permissions
    from crmcore.services.timeline import older
    from crmcore_accounting_bridge.calc import round_money
    from crmcore_accounting_bridge.models import Invoice, Payment

    if not permissions.has(ctx, "accounting.view"):
        return []
    invoices = select(Invoice).where(Invoice.contact_id == contact.id)
    payments = select(Payment, Invoice.number).outerjoin(Invoice, Invoice.id == Payment.invoice_id).where(
        Payment.contact_id == contact.id)  # fmt: skip
    if (after := older(cursor, INVOICE_KEY, Invoice.created_at, Invoice.id)) is not None:
        invoices = invoices.where(after)
    if (after := older(cursor, PAYMENT_KEY, Payment.created_at, Payment.id)) is not None:
        payments = payments.where(after)
    items: list[dict[str, Any]] = []
    for invoice in ctx.session.scalars(invoices.order_by(Invoice.created_at.desc(), Invoice.id.desc()).limit(limit)):
        what = "Credit note" if invoice.kind == "credit_note" else "Invoice"
        message = (N_("Credit note %(number)s: %(total)s, due %(due)s") if invoice.kind == "credit_note"
                   else N_("Invoice %(number)s: %(total)s, due %(due)s"))  # fmt: skip
        items.append({"at": invoice.created_at, "kind": invoice.kind, "invoice_id": invoice.id,
                      "key": INVOICE_KEY, "id": invoice.id,
                      "text": f"{what} {invoice.number}: {round_money(invoice.total, invoice.currency)} "
                              f"{invoice.currency}, due {invoice.due_on}",
                      "message": message, "terms": {},
                      "values": {"number": invoice.number, "due": invoice.due_on,
                                 "total": {"amount": invoice.total, "currency": invoice.currency}}})  # fmt: skip
    payments = payments.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit)
    for payment, number in ctx.session.execute(payments):
        amount = round_money(payment.amount, payment.currency)
        items.append({"at": payment.created_at, "kind": "payment", "payment_id": payment.id,
                      "key": PAYMENT_KEY, "id": payment.id,
                      "text": f"Payment {payment.reference}: {amount} {payment.currency} for {number}",
                      "message": N_("Payment %(reference)s: %(amount)s for %(number)s") if number
                                 else N_("Payment %(reference)s: %(amount)s"), "terms": {},
                      "values": {"reference": payment.reference, "number": number,
                                 "amount": {"amount": payment.amount, "currency": payment.currency}}})  # fmt: skip
    return items


@hookimpl
def crm_revenue_query(query: ReportQuery, ctx: HookContext) -> Select[Any] | None:
    """Attribution credits invoiced revenue (invoices less credit notes) when sales are invoiced automatically.

    With ``auto_invoice = "off"`` not every sale has an invoice, so the recorded
    purchases stay the revenue (the core's answer).
    """
    from crmcore_accounting_bridge.config import Config
    from crmcore_accounting_bridge.reports import revenue_events

    if Config.of(ctx.crm).auto_invoice == "off":
        return None
    return revenue_events()  # type: ignore[no-any-return]
