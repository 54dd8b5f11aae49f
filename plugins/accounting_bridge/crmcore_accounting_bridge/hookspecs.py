"""Hooks the accounting bridge publishes for other plugins (reminders, tickets, connectors).

Implement them with ``@hookimpl(optionalhook=True)`` so your plugin still loads
when the accounting bridge is not enabled. Notifications run inside the
transaction that made the change: raising rolls it back; side effects belong
in the outbox (``ctx.enqueue``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore_accounting_bridge.connectors import Connector
    from crmcore_accounting_bridge.events import InvoiceIssued, InvoiceOverdue, InvoicePaid, PaymentRecorded


@hookspec
def crm_invoice_issued(event: InvoiceIssued, ctx: HookContext) -> None:
    """An invoice or a credit note (``event.kind``) was numbered and posted to the journal.

    Fires inside the transaction that issued it (a command, or the won
    opportunity or recorded purchase that invoiced automatically); raising
    rolls the invoice, its number and its journal entry back. May write.
    All implementations run; return values are ignored.

    :param event: The invoice's id, number, kind, customer, total, currency, due date and source.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_payment_recorded(event: PaymentRecorded, ctx: HookContext) -> None:
    """A payment was recorded and posted (by ``crm accounting pay`` or an import).

    ``event.credit`` is the part beyond the invoice's open amount, kept as the
    customer's credit. Fires inside the recording transaction; raising rolls
    the payment back. May write. All implementations run; return values are ignored.

    :param event: The payment, its invoice, customer, amount, applied part and credit.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_invoice_paid(event: InvoicePaid, ctx: HookContext) -> None:
    """An invoice became fully paid (its open amount reached zero).

    Fires once per invoice, after ``crm_payment_recorded``, inside the same
    transaction; raising rolls the payment back. May write (close a dunning
    ticket, stop a reminder sequence). All implementations run; return values are ignored.

    :param event: The invoice, its number, customer, total, currency and the day it was paid.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_invoice_overdue(event: InvoiceOverdue, ctx: HookContext) -> None:
    """An open invoice passed its due date: start a reminder sequence, open a ticket.

    Fires once per invoice, from the daily ``accounting_bridge.overdue`` job
    (or ``crm accounting overdue``), inside its transaction; raising rolls the
    check of that invoice back and it fires again on the next run. May write.
    All implementations run; return values are ignored.

    :param event: The invoice, customer, open amount, due date and days overdue.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_register_accounting_connectors() -> list[Connector]:  # type: ignore[empty-body]
    """Contribute connectors that push customers, invoices and payments to an external system.

    A registration hook, called once at start-up; every implementation's list is
    kept. A connector is enabled by naming it in the ``connectors`` setting; the
    plugin then queues one outbox job per document and connector, and stores the
    external id the connector returns, so a re-run never pushes a second copy.
    Must not write.

    :returns: :class:`~crmcore_accounting_bridge.connectors.Connector` objects with unique names.

    .. versionadded:: 0.1
    """
