"""The events the accounting bridge's hooks receive (frozen values)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import attrs


@attrs.frozen(kw_only=True)
class InvoiceIssued:
    """An invoice or credit note was numbered and posted."""

    invoice_id: int
    number: str
    kind: str
    contact_id: int
    total: Decimal
    currency: str
    due_on: date
    source: str | None
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class PaymentRecorded:
    """A payment was recorded and posted; ``credit`` is the overpayment kept as credit."""

    payment_id: int
    invoice_id: int | None
    contact_id: int
    amount: Decimal
    applied: Decimal
    credit: Decimal
    currency: str
    received_on: date
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class InvoicePaid:
    """An invoice's open amount reached zero through payments (and credit notes)."""

    invoice_id: int
    number: str
    contact_id: int
    total: Decimal
    currency: str
    paid_on: date
    occurred_at: datetime


@attrs.frozen(kw_only=True)
class InvoiceOverdue:
    """An open invoice passed its due date (reported once per invoice)."""

    invoice_id: int
    number: str
    contact_id: int
    open_amount: Decimal
    currency: str
    due_on: date
    days_overdue: int
    occurred_at: datetime
