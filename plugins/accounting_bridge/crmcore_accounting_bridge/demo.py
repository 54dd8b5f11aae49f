"""The accounting bridge's part of ``crm demo``: the day's purchases invoiced, customers paying (some late)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select

from crmcore.models import Purchase
from crmcore_accounting_bridge.calc import round_money
from crmcore_accounting_bridge.models import Invoice

if TYPE_CHECKING:
    from crmcore.demo.simulation import DemoDay


def simulate(day: DemoDay) -> None:
    """Invoice today's purchases in one batch; open invoices get paid at random, a few overpaid, some never."""
    from crmcore_accounting_bridge import accounting
    from crmcore_accounting_bridge.invoices import invoice_purchase

    crm, rng = day.crm, day.rng
    books = accounting(crm)
    day.at(18)
    start = datetime.combine(day.date, time(0), tzinfo=UTC)
    with crm.transaction() as ctx:
        bought = ctx.session.scalars(select(Purchase.id).where(Purchase.purchased_at >= start,
                                                               Purchase.purchased_at < start + timedelta(days=1)))
        purchases = list(bought)
        done = set(ctx.session.scalars(select(Invoice.source).where(
            Invoice.source.in_([f"purchase:{p}" for p in purchases]))))  # fmt: skip
        for purchase_id in purchases:
            if f"purchase:{purchase_id}" not in done:
                invoice_purchase(ctx, purchase_id)
                day.count("invoices issued")
    with crm.transaction(readonly=True) as ctx:
        open_invoices = list(ctx.session.execute(
            select(Invoice.number, Invoice.total, Invoice.paid_amount, Invoice.credited_amount, Invoice.currency,
                   Invoice.issued_on).where(Invoice.status == "open", Invoice.kind == "invoice")))  # fmt: skip
    for number, total, paid, credited, currency, issued_on in open_invoices:
        age = (day.date - issued_on).days
        if age < 2 or number.endswith("7") or rng.random() > 0.06:  # every tenth customer never pays
            continue
        amount = round_money(total - paid - credited, currency)
        extra = round_money(amount * rng.choice([Decimal(0)] * 9 + [Decimal("0.05")]), currency)
        books.payments.record(number, amount + extra, received_on=day.date, reference=f"DEMO-{number}")
        day.count("invoices paid")
        if extra:
            day.count("overpayments kept as credit")
    if day.last:
        books.payments.check_overdue()
        overdue = books.invoices.list(status="overdue", limit=100_000)
        day.count("invoices overdue at the end", len(overdue))
