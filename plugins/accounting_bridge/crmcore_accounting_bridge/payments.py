"""Payments: recorded by hand or imported from a bank or accounting CSV; balances, overdue invoices."""

from __future__ import annotations

import csv
import hashlib
import secrets
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmcore import permissions
from crmcore.errors import Conflict, ValidationError
from crmcore.models import Contact
from crmcore.services.base import Service, get_contact
from crmcore.validation import currency_code, parse_date
from crmcore_accounting_bridge.calc import round_money
from crmcore_accounting_bridge.config import Config
from crmcore_accounting_bridge.events import InvoiceOverdue, InvoicePaid, PaymentRecorded
from crmcore_accounting_bridge.invoices import _decimal, contact_label, find_invoice
from crmcore_accounting_bridge.journal import Leg, balance_in, local_today, post
from crmcore_accounting_bridge.models import Invoice, Payment

if TYPE_CHECKING:
    from crmcore.context import HookContext

ZERO = Decimal(0)
OVERDUE_HANDLER = "accounting_bridge.overdue"
#: Columns a payments CSV may have; ``amount`` and ``date`` are required, and ``invoice`` or ``customer``.
CSV_COLUMNS = ("invoice", "amount", "date", "customer", "currency", "reference")


def record_in(ctx: HookContext, invoice: Invoice, amount: Decimal, *, currency: str, received_on: date,
              reference: str, source: str) -> Payment:  # fmt: skip
    """Record a payment of *invoice* in the unit of work: post it, mark the invoice paid, fire the hooks.

    What exceeds the invoice's open amount is kept as the customer's credit
    (posted to the ``customer_credit`` account) and reported in ``Payment.credit``.
    """
    config = Config.of(ctx.crm)
    if invoice.kind != "invoice":
        raise ValidationError({"invoice": f"{invoice.number} is a credit note: payments go to invoices"})
    if currency != invoice.currency:
        raise ValidationError({"currency": f"payment in {currency}, invoice {invoice.number} is in {invoice.currency}"})
    if amount <= 0:
        raise ValidationError({"amount": "must be more than 0"})
    if round_money(amount, currency) != amount:
        raise ValidationError({"amount": f"{amount} has more decimals than {currency} has"})
    if ctx.first(Payment, Payment.reference == reference) is not None:
        raise Conflict(f"payment {reference!r} is already recorded")
    applied = round_money(min(amount, invoice.open_amount), currency)
    credit = amount - applied
    payment = Payment(contact_id=invoice.contact_id, invoice_id=invoice.id, amount=amount, applied=applied,
                      credit=credit, currency=currency, received_on=received_on, reference=reference,
                      source=source, created_at=ctx.now)  # fmt: skip
    ctx.session.add(payment)
    ctx.session.flush()
    contact = ctx.session.get(Contact, invoice.contact_id)
    assert contact is not None
    post(ctx, kind="payment", posted_on=received_on, payee=contact_label(contact),
         narration=f"Payment {reference} for {invoice.number}" + (f" ({credit} {currency} credit)" if credit else ""),
         currency=currency, invoice_id=invoice.id, payment_id=payment.id,
         legs=[Leg(config.account("bank"), amount), Leg(config.account("receivable"), -applied, contact.id),
               Leg(config.account("customer_credit"), -credit, contact.id)])  # fmt: skip
    was_open = invoice.status == "open"
    invoice.paid_amount += applied
    ctx.audit("accounting.payment.record", "contact", contact.id,
              {"invoice": invoice.number, "amount": amount, "credit": credit, "reference": reference})  # fmt: skip
    ctx.call("crm_payment_recorded", event=PaymentRecorded(
        payment_id=payment.id, invoice_id=invoice.id, contact_id=contact.id, amount=amount, applied=applied,
        credit=credit, currency=currency, received_on=received_on, occurred_at=ctx.now))  # fmt: skip
    if was_open and invoice.open_amount == 0:
        invoice.status, invoice.paid_on = "paid", received_on
        ctx.call("crm_invoice_paid", event=InvoicePaid(
            invoice_id=invoice.id, number=invoice.number, contact_id=contact.id, total=invoice.total,
            currency=currency, paid_on=received_on, occurred_at=ctx.now))  # fmt: skip
    from crmcore_accounting_bridge.connectors import queue_push

    queue_push(ctx, "payment", payment.id)
    return payment


@attrs.frozen(kw_only=True)
class ImportReport:
    """What an import did: recorded payments, rows already recorded, rows it could not match."""

    recorded: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]

    @property
    def credit(self) -> list[dict[str, Any]]:
        """The recorded payments that overpaid (their excess was kept as credit)."""
        return [r for r in self.recorded if r["credit"]]


@attrs.frozen
class _Row:
    line: int
    invoice: str | None
    amount: Decimal
    received_on: date
    customer: str | None
    currency: str | None
    reference: str


class PaymentService(Service):
    """Record payments, import them, balances and overdue invoices."""

    def record(self, invoice: str | int, amount: Any, *, received_on: date | str | None = None,
               reference: str | None = None, currency: str | None = None, actor: Any = None) -> Payment:  # fmt: skip
        """Record a payment of an invoice (any excess becomes the customer's credit)."""
        value = _decimal(amount, "amount")
        when = parse_date(received_on, "received_on")
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.books")
            target = find_invoice(ctx, invoice)
            code = currency_code(currency, target.currency)
            day = when or local_today(ctx)
            ref = (reference or "").strip() or f"manual:{target.number}:{ctx.now:%Y%m%d%H%M%S}:{secrets.token_hex(4)}"
            return record_in(ctx, target, value, currency=code, received_on=day, reference=ref[:120], source="manual")

    def import_csv(self, path: str | Path, *, actor: Any = None) -> ImportReport:
        """Import payments from a CSV (columns ``invoice, amount, date, customer, currency, reference``).

        Every row is checked first: unknown columns or a malformed row refuse the
        whole file and nothing is written. Rows then match an open invoice by
        number (checked against the customer and amount given), or, without a
        number, by customer and an exact open amount. Matched rows are recorded in
        one transaction; rows recorded before (same reference) are skipped, so an
        import can be repeated; the rest are reported as unmatched, with the reason.
        """
        rows = self._read(Path(path))
        recorded: list[dict[str, Any]] = []
        duplicates: list[dict[str, Any]] = []
        unmatched: list[dict[str, Any]] = []
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "accounting.books")
            for row in rows:
                base = {"line": row.line, "invoice": row.invoice, "amount": row.amount, "reference": row.reference}
                if ctx.first(Payment, Payment.reference == row.reference) is not None:
                    duplicates.append(base)
                    continue
                invoice, reason = self._match(ctx, row)
                if invoice is None:
                    unmatched.append({**base, "reason": reason})
                    continue
                payment = record_in(ctx, invoice, row.amount, currency=row.currency or invoice.currency,
                                    received_on=row.received_on, reference=row.reference, source="import")  # fmt: skip
                recorded.append({**base, "invoice": invoice.number, "payment_id": payment.id,
                                 "applied": payment.applied, "credit": payment.credit,
                                 "status": invoice.status})  # fmt: skip
        return ImportReport(recorded=recorded, duplicates=duplicates, unmatched=unmatched)

    def _read(self, path: Path) -> list[_Row]:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError({"file": f"cannot read {path}: {exc}"}) from None
        reader = csv.DictReader(text.splitlines())
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        unknown = [c for c in columns if c not in CSV_COLUMNS]
        missing = [c for c in ("amount", "date") if c not in columns]
        if unknown or missing or not ({"invoice", "customer"} & set(columns)):
            problems = []
            if unknown:
                problems.append(f"unknown column(s) {', '.join(unknown)}")
            if missing:
                problems.append(f"missing column(s) {', '.join(missing)}")
            if not ({"invoice", "customer"} & set(columns)):
                problems.append("needs an invoice or a customer column")
            raise ValidationError({"columns": "; ".join(problems) + f" (columns: {', '.join(CSV_COLUMNS)})"})
        rows: list[_Row] = []
        errors: dict[str, str] = {}
        seen: dict[str, int] = {}
        for number, raw in enumerate(reader, start=2):
            values = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            if None in raw:
                errors[f"line {number}"] = "more fields than columns"
                continue
            try:
                amount = _decimal(values.get("amount"), "amount")
                if amount <= 0:
                    raise ValidationError({"amount": "must be more than 0"})
                received = parse_date(values.get("date") or None, "date")
                if received is None:
                    raise ValidationError({"date": "is required"})
                currency = currency_code(values["currency"], "XXX") if values.get("currency") else None
            except ValidationError as exc:
                errors.update({f"line {number} {k}": v for k, v in exc.errors.items()})
                continue
            invoice = values.get("invoice") or None
            customer = values.get("customer") or None
            if not invoice and not customer:
                errors[f"line {number}"] = "give an invoice number or a customer"
                continue
            reference = values.get("reference") or ""
            if not reference:  # the row's content; a repeated identical row in one file stays distinct
                digest = hashlib.sha256("|".join([invoice or "", str(amount), str(received), customer or ""])
                                        .encode()).hexdigest()[:24]  # fmt: skip
                seen[digest] = seen.get(digest, 0) + 1
                reference = f"csv:{digest}:{seen[digest]}"
            rows.append(_Row(number, invoice.upper() if invoice else None, amount, received, customer, currency,
                             reference[:120]))  # fmt: skip
        if errors:
            raise ValidationError(errors)
        return rows

    def _match(self, ctx: HookContext, row: _Row) -> tuple[Invoice | None, str]:
        customer = None
        if row.customer:
            try:
                customer = get_contact(ctx, row.customer)
            except Exception:
                return None, f"no customer {row.customer!r}"
        if row.invoice:
            invoice = ctx.first(Invoice, Invoice.number == row.invoice, Invoice.kind == "invoice")
            if invoice is None:
                return None, f"no invoice {row.invoice}"
            if customer is not None and invoice.contact_id != customer.id:
                return None, f"invoice {row.invoice} belongs to another customer"
            if row.currency and row.currency != invoice.currency:
                return None, f"payment in {row.currency}, invoice in {invoice.currency}"
            if invoice.status != "open":
                return None, f"invoice {row.invoice} is {invoice.status}"
            return invoice, ""
        assert customer is not None
        candidates = [i for i in ctx.session.scalars(
            select(Invoice).where(Invoice.contact_id == customer.id, Invoice.status == "open",
                                  Invoice.kind == "invoice").order_by(Invoice.due_on, Invoice.id))
            if i.open_amount == row.amount and (row.currency is None or row.currency == i.currency)]  # fmt: skip
        if not candidates:
            return None, f"no open invoice of {row.customer} for {row.amount}"
        return candidates[0], ""

    def balance(self, contact: Any, *, actor: Any = None) -> dict[str, Any]:
        """A customer's open balance, credit and overdue invoices."""
        with self.crm.transaction(actor, readonly=True) as ctx:
            permissions.require(ctx, "accounting.view")
            return balance_in(ctx, get_contact(ctx, contact).id)

    def check_overdue(self, *, actor: Any = None) -> list[dict[str, Any]]:
        """Report each open invoice past its due date once: the hook, and a ticket when configured."""
        with self.crm.transaction(actor) as ctx:
            return check_overdue_in(ctx)


def check_overdue_in(ctx: HookContext) -> list[dict[str, Any]]:
    """Fire ``crm_invoice_overdue`` once for each newly overdue invoice; open tickets if configured."""
    config = Config.of(ctx.crm)
    today = local_today(ctx)
    found = ctx.session.scalars(
        select(Invoice).where(Invoice.status == "open", Invoice.due_on < today, Invoice.overdue_notified_on.is_(None))
        .order_by(Invoice.due_on, Invoice.id)
    ).all()  # fmt: skip
    reported = []
    for invoice in found:
        invoice.overdue_notified_on = today
        event = InvoiceOverdue(invoice_id=invoice.id, number=invoice.number, contact_id=invoice.contact_id,
                               open_amount=invoice.open_amount, currency=invoice.currency, due_on=invoice.due_on,
                               days_overdue=(today - invoice.due_on).days, occurred_at=ctx.now)  # fmt: skip
        ctx.call("crm_invoice_overdue", event=event)
        ticket = None
        if config.overdue_ticket and ctx.crm.plugins.is_enabled("ticketing"):
            ticket = _open_ticket(ctx, invoice, event)
        reported.append({"number": invoice.number, "contact_id": invoice.contact_id, "due_on": invoice.due_on,
                         "open_amount": round_money(invoice.open_amount, invoice.currency),
                         "currency": invoice.currency,
                         "days_overdue": event.days_overdue, "ticket": ticket})  # fmt: skip
    return reported


def _open_ticket(ctx: HookContext, invoice: Invoice, event: InvoiceOverdue) -> str:
    from crmcore_ticketing import ticketing  # type: ignore[import-not-found]

    contact = ctx.session.get(Contact, invoice.contact_id)
    assert contact is not None
    body = (f"Invoice {invoice.number} of {invoice.total} {invoice.currency} was due on {invoice.due_on}; "
            f"{event.open_amount} {invoice.currency} is still open ({event.days_overdue} days overdue).")  # fmt: skip
    ticket = ticketing(ctx.crm).tickets.open(
        subject=f"Overdue invoice {invoice.number}", body=body, requester=contact.id, channel="api",
        category="task", tags=["billing", "overdue-invoice"], by_agent=True, public=False,
    )
    return str(ticket.number)


def overdue_job(call: Any) -> None:
    """The daily overdue check (``accounting_bridge.overdue``)."""
    with call.crm.transaction() as ctx:
        check_overdue_in(ctx)


def registrations() -> Iterable[Any]:
    """The daily overdue check."""
    from datetime import timedelta

    from crmcore.registry import JobHandler, PeriodicJob

    return [JobHandler(name=OVERDUE_HANDLER, func=overdue_job, help="report invoices that became overdue"),
            PeriodicJob(name=OVERDUE_HANDLER, handler=OVERDUE_HANDLER, every=timedelta(hours=24))]  # fmt: skip
