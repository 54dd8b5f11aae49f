"""crmcore-accounting-bridge: invoices and double-entry journals from sales, exported to accounting tools.

Reach the services of a CRM with :func:`accounting`::

    from crmcore_accounting_bridge import accounting

    books = accounting(crm)
    invoice = books.invoices.create("ada@example.com", lines=[{"sku": "PRO", "quantity": 2}])
    books.payments.record(invoice.number, "238.00")
    books.exports.export("beancount", "books.beancount")
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore_accounting_bridge.export import Exporter
    from crmcore_accounting_bridge.invoices import InvoiceService
    from crmcore_accounting_bridge.journal import Journal
    from crmcore_accounting_bridge.payments import PaymentService

__all__ = ["Accounting", "accounting"]


class Accounting:
    """The accounting services of one CRM."""

    def __init__(self, crm: CRM) -> None:
        from crmcore.errors import ConfigError

        if not crm.plugins.is_enabled("accounting_bridge"):
            raise ConfigError("the accounting_bridge plugin is not enabled on this CRM")
        self.crm = crm

    @cached_property
    def invoices(self) -> InvoiceService:
        """Issue invoices and credit notes; read them."""
        from crmcore_accounting_bridge.invoices import InvoiceService

        return InvoiceService(self.crm)

    @cached_property
    def payments(self) -> PaymentService:
        """Record and import payments; balances; overdue invoices."""
        from crmcore_accounting_bridge.payments import PaymentService

        return PaymentService(self.crm)

    @cached_property
    def journal(self) -> Journal:
        """The double-entry journal: entries, reversals, the trial balance."""
        from crmcore_accounting_bridge.journal import Journal

        return Journal(self.crm)

    @cached_property
    def exports(self) -> Exporter:
        """Beancount, ledger and CSV exports."""
        from crmcore_accounting_bridge.export import Exporter

        return Exporter(self.crm)


_services: weakref.WeakKeyDictionary[CRM, Accounting] = weakref.WeakKeyDictionary()


def accounting(crm: CRM) -> Accounting:
    """The accounting services of *crm* (made once per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = Accounting(crm)
    return found
