"""The accounting bridge's tables: series, invoices, journal, payments, export state, external ids.

Journal entries and their postings are written once and never changed: a
mapper event refuses any UPDATE or DELETE of them (a mistake is corrected by a
reversing entry). Money is ``Numeric(18, 4)``; amounts are rounded to the
currency's minor unit before they are stored (see :mod:`.calc`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, JSONData, Money, UTCDateTime

#: Quantities: decimals (hours, kilograms), never float.
Quantity = Numeric(18, 4, asdecimal=True)
#: Rates and percentages as fractions (0.19 is 19 %).
Rate = Numeric(9, 6, asdecimal=True)


class Series(Base):
    """A numbering series (``INV`` for invoices, ``CN`` for credit notes) in one year.

    ``last_number`` is the counter: it is read with a row lock (``SELECT … FOR
    UPDATE``; SQLite's ``BEGIN IMMEDIATE`` serializes writers), incremented and
    written in the transaction that issues the document, so a rolled-back
    issue also rolls back its number: no gaps, no duplicates.
    """

    __tablename__ = "accounting_bridge_series"
    __table_args__ = (UniqueConstraint("code", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20))
    year: Mapped[int] = mapped_column(Integer)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Invoice(Base):
    """An invoice or a credit note (``kind``), with its totals and what is paid."""

    __tablename__ = "accounting_bridge_invoice"
    __table_args__ = (
        Index("ix_accounting_bridge_invoice_contact_status", "contact_id", "status", "due_on"),
        Index("ix_accounting_bridge_invoice_status_due", "status", "due_on"),
        Index("ix_accounting_bridge_invoice_issued", "issued_on", "kind"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(12))  # invoice | credit_note
    series_id: Mapped[int] = mapped_column(ForeignKey("accounting_bridge_series.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_user.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    #: ``line`` or ``invoice``: where taxes were rounded (see the guide).
    rounding: Mapped[str] = mapped_column(String(8))
    net_total: Mapped[Decimal] = mapped_column(Money)
    tax_total: Mapped[Decimal] = mapped_column(Money)
    total: Mapped[Decimal] = mapped_column(Money)
    #: ``{tax code: amount}`` as posted to the tax accounts.
    taxes: Mapped[dict[str, str]] = mapped_column(JSONData, default=dict)
    paid_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    credited_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    #: ``open``, ``paid`` or ``credited`` (a credit note is ``credited`` at once).
    status: Mapped[str] = mapped_column(String(10))
    paid_on: Mapped[date | None] = mapped_column(Date)
    #: What it was made from: ``opportunity:12``, ``purchase:7``; unique, so a sale is invoiced once.
    source: Mapped[str | None] = mapped_column(String(60), unique=True)
    #: For a credit note: the invoice it refunds.
    credits_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_bridge_invoice.id"), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    overdue_notified_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def open_amount(self) -> Decimal:
        """What the customer still owes on this invoice."""
        if self.kind != "invoice":
            return Decimal(0)
        return max(self.total - self.paid_amount - self.credited_amount, Decimal(0))


class InvoiceLine(Base):
    """One line: product, quantity, unit price, discount, taxes (several), net and gross."""

    __tablename__ = "accounting_bridge_invoice_line"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("accounting_bridge_invoice.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"), index=True)
    description: Mapped[str] = mapped_column(String(255))
    #: Chooses the revenue account (the product's category by default).
    product_group: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Rate, default=Decimal(0))
    tax_inclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ``[{"code": "VAT19", "rate": "0.19", "amount": "1.9000"}]``; amounts unrounded under invoice rounding.
    taxes: Mapped[list[dict[str, str]]] = mapped_column(JSONData, default=list)
    net: Mapped[Decimal] = mapped_column(Money)
    tax: Mapped[Decimal] = mapped_column(Money)
    gross: Mapped[Decimal] = mapped_column(Money)


class Entry(Base):
    """A journal entry: balanced postings, written once, corrected only by a reversal."""

    __tablename__ = "accounting_bridge_entry"
    __table_args__ = (Index("ix_accounting_bridge_entry_posted", "posted_on", "id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    posted_on: Mapped[date] = mapped_column(Date)
    #: ``invoice``, ``credit_note``, ``payment`` or ``reversal``.
    kind: Mapped[str] = mapped_column(String(12))
    payee: Mapped[str] = mapped_column(String(255))
    narration: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_bridge_invoice.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_bridge_payment.id"), index=True)
    #: The entry this one reverses; unique, so an entry is reversed at most once.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_bridge_entry.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Posting(Base):
    """One leg of an entry: an account and a signed amount (debit positive, credit negative)."""

    __tablename__ = "accounting_bridge_posting"
    __table_args__ = (Index("ix_accounting_bridge_posting_account", "account", "entry_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("accounting_bridge_entry.id"), index=True)
    account: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Money)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"), index=True)


class Payment(Base):
    """Money received: applied to an invoice, any excess kept as the customer's credit."""

    __tablename__ = "accounting_bridge_payment"
    __table_args__ = (Index("ix_accounting_bridge_payment_contact", "contact_id", "received_on"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_bridge_invoice.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    applied: Mapped[Decimal] = mapped_column(Money)
    #: The overpayment, kept as the customer's credit.
    credit: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[date] = mapped_column(Date)
    #: The bank's or accounting tool's reference; unique, so an import twice records once.
    reference: Mapped[str] = mapped_column(String(120), unique=True)
    source: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExportState(Base):
    """What an export target (format + file) already holds: incremental runs start after it."""

    __tablename__ = "accounting_bridge_export_state"
    __table_args__ = (UniqueConstraint("format", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    format: Mapped[str] = mapped_column(String(12))
    target: Mapped[str] = mapped_column(String(500))
    entries: Mapped[int] = mapped_column(Integer, default=0)
    last_entry_id: Mapped[int] = mapped_column(BigID, default=0)
    exported_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExternalRef(Base):
    """The id an external system gave a customer, invoice or payment: pushed once per connector."""

    __tablename__ = "accounting_bridge_external_ref"
    __table_args__ = (UniqueConstraint("connector", "kind", "local_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    connector: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(20))  # customer | invoice | payment
    local_id: Mapped[int] = mapped_column(BigID)
    external_id: Mapped[str] = mapped_column(String(200))
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _refuse_change(_mapper: Any, _connection: Any, target: Any) -> None:
    from crmcore.errors import Conflict

    raise Conflict(
        f"journal {type(target).__name__.lower()} {target.id} is posted: it is never edited or deleted, only reversed"
    )


for _model in (Entry, Posting):
    event.listen(_model, "before_update", _refuse_change)
    event.listen(_model, "before_delete", _refuse_change)
