"""Accounting bridge benchmarks (issue 10): posting invoices and exporting the journal.

Run: python bench/accounting.py [--full]. SQLite only (files in a temporary folder).
Default: 10,000 invoices (about a minute); --full: 100,000 (the issue's size).

1. Post: N invoices of two lines each (a product with 19 % VAT, a service with
   19 % VAT and a 2 % city tax, 10 % discount on one), each numbered from its
   series, computed in Decimal, stored with its lines, posted as a balanced
   journal entry (receivable, two revenue accounts, two tax accounts) and
   audited, through ``books.invoices.post_many`` in batches of 1,000 (one
   transaction each; every invoice keyed by the sale it comes from, so a
   second post of a batch creates nothing: measured too). Also a sample
   through ``books.invoices.create`` (one transaction per invoice, as a rep
   issuing invoices by hand does).
   Baseline in the same run: the same rows (already computed) inserted with
   plain SQLAlchemy Core multi-row inserts into a database of the same schema,
   in the same batches: the floor of "store invoices, lines, entries, postings".
   Target: >= 2,000 invoices/s posted.
2. Export: the whole journal to Beancount, ledger and CSV (time and size), and
   a second, incremental run that finds nothing new (the idempotency check).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from _common import Report, scratch_sqlite

from crmcore import CRM
from crmcore.clock import FrozenClock

BATCH = 1000
SETTINGS = {"tax_rates": {"VAT19": "0.19", "CITY": "0.02"}, "default_taxes": ["VAT19"]}


def make_crm(url: str) -> CRM:
    crm = CRM(database_url=url, plugins=["accounting_bridge"], clock=FrozenClock("2026-03-02T09:00:00+00:00"),
              currency="EUR", plugin_settings={"accounting_bridge": SETTINGS})  # fmt: skip
    crm.db_upgrade()
    return crm


def seed(crm: CRM, customers: int) -> list[int]:
    for n in range(10):
        crm.products.add(f"SKU{n}", f"Product {n}", unit_price=Decimal(10 + n), currency="EUR",
                         category="software" if n % 2 else "hardware")  # fmt: skip
    crm.leads.capture_many([{"email": f"customer{n}@example.com", "first_name": f"Customer {n}"}
                            for n in range(customers)])  # fmt: skip
    from sqlalchemy import select

    from crmcore.models import Contact

    with crm.transaction(readonly=True) as ctx:
        return list(ctx.session.scalars(select(Contact.id).order_by(Contact.id)))


def specs(contacts: list[int], count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"source": f"shop-order:{n}", "contact": contacts[n % len(contacts)], "lines": [
            {"sku": f"SKU{n % 10}", "quantity": 1 + n % 5, "discount": 10 if n % 3 == 0 else 0},
            {"description": "Installation", "price": "49.90", "taxes": ["VAT19", "CITY"], "group": "services"},
        ]}
        for n in range(start, start + count)
    ]  # fmt: skip


def baseline(count: int, contacts: int) -> float:
    """Plain SQLAlchemy Core: the same rows, precomputed, executemany inserts in the same batches."""
    from crmcore_accounting_bridge.models import Entry, Invoice, InvoiceLine, Posting, Series
    from sqlalchemy import insert, select

    from crmcore.models import Contact

    crm = make_crm(scratch_sqlite("baseline.db"))
    ids = seed(crm, contacts)
    now = crm.clock.now()
    with crm.engine.begin() as connection:
        added = connection.execute(insert(Series).values(code="INV", year=2026, last_number=0))
        series_id = added.inserted_primary_key[0]
        connection.execute(select(Contact.id).limit(1))
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        size = min(BATCH, count - first)
        with crm.engine.begin() as connection:
            rows = [{"number": f"INV-2026-{first + n + 1:06d}", "kind": "invoice", "series_id": series_id,
                     "contact_id": ids[(first + n) % len(ids)], "rep_id": None, "currency": "EUR",
                     "issued_on": date(2026, 3, 2), "due_on": date(2026, 4, 1), "rounding": "line",
                     "net_total": Decimal("59.90"), "tax_total": Decimal("12.38"), "total": Decimal("72.28"),
                     "taxes": {"VAT19": "11.38", "CITY": "1.00"}, "paid_amount": 0, "credited_amount": 0,
                     "status": "open", "source": None, "credits_invoice_id": None, "notes": None,
                     "overdue_notified_on": None, "paid_on": None, "created_at": now} for n in range(size)]  # fmt: skip
            connection.execute(insert(Invoice.__table__), rows)
            numbers = [r["number"] for r in rows]
            invoice_ids = list(connection.scalars(select(Invoice.id).where(Invoice.number.in_(numbers))))
            connection.execute(insert(InvoiceLine.__table__), [
                {"invoice_id": i, "position": p, "product_id": None, "description": "x", "product_group": "g",
                 "quantity": 1, "unit_price": Decimal("10"), "discount": 0, "tax_inclusive": False,
                 "taxes": [{"code": "VAT19", "rate": "0.19", "amount": "1.90"}], "net": Decimal("10"),
                 "tax": Decimal("1.90"), "gross": Decimal("11.90")} for i in invoice_ids for p in (1, 2)])  # fmt: skip
            connection.execute(insert(Entry.__table__), [
                {"posted_on": date(2026, 3, 2), "kind": "invoice", "payee": "Customer", "narration": "Invoice",
                 "currency": "EUR", "invoice_id": i, "payment_id": None, "reverses_id": None, "created_at": now}
                for i in invoice_ids])  # fmt: skip
            entry_ids = list(connection.scalars(select(Entry.id).where(Entry.invoice_id.in_(invoice_ids))))
            connection.execute(insert(Posting.__table__), [
                {"entry_id": e, "account": a, "amount": Decimal("1"), "contact_id": None}
                for e in entry_ids for a in ("Assets:Receivable", "Income:Sales:A", "Income:Sales:B",
                                             "Liabilities:Tax:VAT19", "Liabilities:Tax:CITY")])  # fmt: skip
    elapsed = time.perf_counter() - started
    crm.dispose()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="100,000 invoices (default 10,000)")
    args = parser.parse_args()
    count = 100_000 if args.full else 10_000
    contacts = count // 10
    report = Report(f"Accounting bridge on SQLite, {count:,} invoices (machine shared and loaded: compare ratios)")
    from crmcore_accounting_bridge import accounting

    url = scratch_sqlite("books.db")
    crm = make_crm(url)
    ids = seed(crm, contacts)
    books = accounting(crm)

    print(f"posting {count:,} invoices in batches of {BATCH} ...")
    batches = [specs(ids, min(BATCH, count - first), first) for first in range(0, count, BATCH)]
    started = time.perf_counter()
    for batch in batches:
        posted = books.invoices.post_many(batch)
    batched = count / (time.perf_counter() - started)
    assert {r.action for r in posted} == {"posted"}, posted[:3]
    base = baseline(count, contacts)
    report.add("post invoices (post_many, 1,000 per transaction)", batched, "invoices/s", base,
               ">= 2,000 invoices/s")  # fmt: skip
    started = time.perf_counter()
    again = books.invoices.post_many(batches[0])
    assert {r.action for r in again} == {"exists"}
    report.add(f"post the first {len(batches[0]):,} again (nothing new)", time.perf_counter() - started, "s",
               higher_is_better=False)  # fmt: skip

    sample = 500
    started = time.perf_counter()
    for item in specs(ids, sample, count):
        books.invoices.create(item["contact"], lines=item["lines"])  # type: ignore[arg-type]
    single = sample / (time.perf_counter() - started)
    report.add(f"post invoices one per transaction (create, {sample} samples)", single, "invoices/s")

    folder = Path(url.removeprefix("sqlite:///")).parent
    for fmt in ("beancount", "ledger", "csv"):
        path = folder / f"books.{fmt}"
        started = time.perf_counter()
        result = books.exports.export(fmt, path)
        elapsed = time.perf_counter() - started
        report.add(f"export {result.total:,} entries to {fmt} ({result.bytes / 1e6:.1f} MB)", elapsed, "s",
                   higher_is_better=False)  # fmt: skip
        started = time.perf_counter()
        again = books.exports.export(fmt, path)
        assert again.written == 0
        report.add(f"export {fmt} again (nothing new)", time.perf_counter() - started, "s", higher_is_better=False)
    try:
        from beancount import loader

        started = time.perf_counter()
        _entries, errors, _options = loader.load_file(str(folder / "books.beancount"))
        report.add(f"beancount loads the export ({len(errors)} errors)", time.perf_counter() - started, "s",
                   higher_is_better=False)  # fmt: skip
    except ImportError:
        print("  (beancount not installed: load check skipped)")
    crm.dispose()
    report.print()


if __name__ == "__main__":
    main()
