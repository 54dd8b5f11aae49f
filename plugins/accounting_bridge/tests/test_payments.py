"""Payments back: import from CSV, matching, overpayments as credit, hooks, balances, overdue invoices."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from crmcore_accounting_bridge.models import Payment
from sqlalchemy import func, select

from crmcore import hookimpl
from crmcore.errors import ValidationError

D = Decimal


@pytest.fixture
def issued(books, ada, grace, products):
    """INV-1 Ada 238.00, INV-2 Grace 119.00, INV-3 Ada 21.40."""
    return [
        books.invoices.create(ada.id, lines=[{"sku": "PRO", "quantity": 2}]),
        books.invoices.create(grace.id, lines=[{"sku": "PRO"}]),
        books.invoices.create(ada.id, lines=[{"sku": "BOOK"}]),
    ]


def write(tmp_path, text: str):
    path = tmp_path / "bank.csv"
    path.write_text(text)
    return path


def count_payments(crm: Any) -> int:
    with crm.transaction(readonly=True) as ctx:
        return int(ctx.scalar(select(func.count(Payment.id))))


def test_import_matches_records_reports_and_is_repeatable(crm, books, issued, tmp_path, hook_calls):
    path = write(tmp_path, "invoice,amount,date,customer,reference\n"
                           "INV-2026-00001,250.00,2026-01-20,ada@example.com,B-1\n"  # 12.00 overpaid
                           "INV-2026-00002,100.00,2026-01-21,ada@example.com,B-2\n"  # wrong customer
                           ",21.40,2026-01-22,ada@example.com,B-3\n"                 # by customer and amount
                           "INV-2026-00009,5.00,2026-01-22,,B-4\n"                   # no such invoice
                           "inv-2026-00002,50.00,2026-01-23,,\n")  # fmt: skip  # partial, lower case, no ref
    report = books.payments.import_csv(path)
    assert [(r["line"], r["invoice"], r["credit"], r["status"]) for r in report.recorded] == [
        (2, "INV-2026-00001", D("12.00"), "paid"), (4, "INV-2026-00003", D("0"), "paid"),
        (6, "INV-2026-00002", D("0"), "open")]  # fmt: skip
    assert [(r["line"], r["reason"]) for r in report.unmatched] == [
        (3, "invoice INV-2026-00002 belongs to another customer"), (5, "no invoice INV-2026-00009")]
    assert [r["line"] for r in report.credit] == [2]
    assert books.payments.balance("ada@example.com") == {
        "open_balance": {}, "customer_credit": {"EUR": "12.00"}, "overdue_invoices": []}
    assert [c["event"].number for c in hook_calls.of("crm_invoice_paid")] == ["INV-2026-00001", "INV-2026-00003"]
    assert len(hook_calls.of("crm_payment_recorded")) == 3
    again = books.payments.import_csv(path)
    assert again.recorded == [] and [r["line"] for r in again.duplicates] == [2, 4, 6]
    assert count_payments(crm) == 3


@pytest.mark.parametrize(("text", "message"), [
    ("invoice,amount,date,iban\nINV-2026-00001,1,2026-01-20,DE00\n", "unknown column(s) iban"),
    ("invoice,amount\nINV-2026-00001,1\n", "missing column(s) date"),
    ("invoice,amount,date\nINV-2026-00001,1,2026-01-20\nINV-2026-00002,ten,2026-01-20\n", "line 3 amount"),
    ("invoice,amount,date\nINV-2026-00001,1,2026-01-20\nINV-2026-00002,-5,2026-01-20\n", "line 3 amount"),
    ("invoice,amount,date\nINV-2026-00001,1,20/01/2026\n", "line 2 date"),
])  # fmt: skip
def test_a_malformed_file_is_refused_whole(crm, books, issued, tmp_path, text, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        books.payments.import_csv(write(tmp_path, text))
    assert count_payments(crm) == 0


class FailingAccounting:
    """Fails on the second payment of an import, like a crash mid-batch."""

    def __init__(self) -> None:
        self.calls = 0
        self.armed = True

    @hookimpl
    def crm_payment_recorded(self, event, ctx):
        self.calls += 1
        if self.armed and self.calls == 2:
            raise RuntimeError("crash")


def test_a_crash_mid_import_writes_nothing_and_a_rerun_records_everything(crm_factory, tmp_path):
    from crmcore_accounting_bridge import accounting

    failing = FailingAccounting()
    crm = crm_factory(plugins=["accounting_bridge", failing])
    contact = crm.leads.capture(email="ada@example.com")
    books = accounting(crm)
    for _ in range(2):
        books.invoices.create(contact.id, lines=[{"description": "Work", "price": "100"}])
    path = write(tmp_path, "invoice,amount,date\nINV-2026-00001,119,2026-01-20\nINV-2026-00002,119,2026-01-20\n")
    with pytest.raises(Exception, match="crash"):
        books.payments.import_csv(path)
    assert count_payments(crm) == 0 and books.invoices.list(status="paid") == []
    failing.armed = False
    assert len(books.payments.import_csv(path).recorded) == 2


def test_payment_bad_input(books, issued):
    with pytest.raises(ValidationError, match="payment in USD, invoice INV-2026-00001 is in EUR"):
        books.payments.record("INV-2026-00001", "10", currency="USD")
    with pytest.raises(ValidationError, match="more decimals than EUR"):
        books.payments.record("INV-2026-00001", "10.005")
    note = books.invoices.credit_note("INV-2026-00003", reason="gift")
    with pytest.raises(ValidationError, match="is a credit note"):
        books.payments.record(note.number, "1")


def test_overpayment_by_command_is_said(cli, issued):
    result = cli("accounting", "pay", "INV-2026-00002", "120.50", "--reference", "B-77")
    assert result.exit_code == 0, result.output
    assert "overpaid by 1.50 EUR, kept as the customer's credit" in result.output


def test_import_command_reports_credit_and_unmatched(cli, issued, tmp_path):
    path = write(tmp_path, "invoice,amount,date\nINV-2026-00002,130,2026-01-20\nINV-2026-00042,1,2026-01-20\n")
    result = cli("accounting", "import-payments", str(path))
    assert result.exit_code == 0, result.output
    assert "1 payment(s) recorded, 0 already recorded, 1 unmatched" in result.output
    assert "line 2: INV-2026-00002 overpaid by 11.00: kept as the customer's credit" in result.output
    assert "line 3: not matched: no invoice INV-2026-00042" in result.output
    refused = cli("accounting", "import-payments", str(write(tmp_path, "number,amount,date\n")))
    assert refused.exit_code == 1 and "unknown column(s) number" in refused.output


def test_contact_show_has_open_balance_and_overdue_invoices(cli, books, issued, clock):
    books.payments.record("INV-2026-00001", "38.00")
    clock.advance(days=40)
    shown = json.loads(cli("contact", "show", "ada@example.com", "--format", "json").output)
    assert shown["open_balance"] == {"EUR": "221.40"}
    assert [(i["number"], i["open_amount"], i["days_overdue"]) for i in shown["overdue_invoices"]] == [
        ("INV-2026-00001", "200.00", 10), ("INV-2026-00003", "21.40", 10)]
    table = cli("contact", "show", "ada@example.com").output
    assert "open_balance" in table and "INV-2026-00003" in table


def test_overdue_invoices_fire_the_hook_once(books, issued, clock, hook_calls):
    books.payments.record("INV-2026-00002", "119.00")
    assert books.payments.check_overdue() == []
    clock.advance(days=31)
    reported = books.payments.check_overdue()
    assert [(r["number"], r["days_overdue"]) for r in reported] == [("INV-2026-00001", 1), ("INV-2026-00003", 1)]
    assert [c["event"].number for c in hook_calls.of("crm_invoice_overdue")] == ["INV-2026-00001", "INV-2026-00003"]
    assert books.payments.check_overdue() == []


def test_overdue_invoices_open_a_ticket_when_ticketing_is_on(crm_factory, accounting_settings, clock, tmp_path):
    from crmcore_accounting_bridge import accounting
    from crmcore_ticketing import ticketing

    crm = crm_factory(plugins=["accounting_bridge", "ticketing"], plugin_settings={
        "accounting_bridge": {**accounting_settings, "overdue_ticket": True},
        "ticketing": {"attachment_dir": str(tmp_path / "att"), "acknowledge": False},
    })  # fmt: skip
    contact = crm.leads.capture(email="ada@example.com")
    work = [{"description": "Work", "price": "100"}]
    invoice = accounting(crm).invoices.create(contact.id, lines=work, terms_days=14)
    clock.advance(days=20)
    [reported] = accounting(crm).payments.check_overdue()
    ticket = ticketing(crm).tickets.get(reported["ticket"])
    assert ticket.subject == f"Overdue invoice {invoice.number}" and ticket.category == "task"
    assert accounting(crm).payments.check_overdue() == []


def test_the_daily_job_reports_overdue_invoices(crm, books, issued, clock, hook_calls, run_due_jobs):
    clock.advance(days=31)
    crm.jobs.schedule_periodic()
    run_due_jobs()
    assert [c["event"].days_overdue for c in hook_calls.of("crm_invoice_overdue")] == [1, 1, 1]


def test_invoices_and_payments_are_on_the_timeline(crm, books, issued, clock):
    clock.advance(hours=1)
    books.payments.record("INV-2026-00001", "238.00", reference="BANK-5")
    timeline = crm.contacts.timeline("ada@example.com")
    texts = [item["text"] for item in timeline if item["kind"] in ("invoice", "payment")]
    assert texts[:3] == ["Payment BANK-5: 238.00 EUR for INV-2026-00001",
                         "Invoice INV-2026-00003: 21.40 EUR, due 2026-02-04",
                         "Invoice INV-2026-00001: 238.00 EUR, due 2026-02-04"]  # fmt: skip
