"""Exports that real tools read: Beancount (its loader), ledger-cli (the program), CSV; incremental and idempotent."""

from __future__ import annotations

import csv
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from crmcore_accounting_bridge.export import Exporter

from crmcore.errors import ValidationError

D = Decimal
LEDGER = shutil.which("ledger")


@pytest.fixture
def booked(books, ada, grace, products, clock):
    """January: two invoices, a partial credit note, an overpayment; February: one invoice and a reversal."""
    first = books.invoices.create(ada.id, lines=[{"sku": "PRO", "quantity": 2}, {"sku": "BOOK"}])
    books.invoices.create(grace.id, lines=[{"description": 'Workshop "Intro"', "price": "500", "discount": "5"}])
    books.invoices.credit_note(first.number, reason="book damaged", lines=[{"sku": "BOOK"}])
    books.payments.record(first.number, "250.00", reference="BANK-1")  # 12.00 over: credit
    clock.advance(days=31)
    books.invoices.create(ada.id, lines=[{"sku": "BOOK", "quantity": 5}], currency="EUR")
    manual = books.journal.post(narration="Bank fee", legs=[("Expenses:Bank", "2.50"), ("Assets:Bank", "-2.50")])
    books.journal.reverse(manual.id, reason="refunded by the bank")
    return books


def beancount_errors(path: Path) -> tuple[list, list]:
    from beancount import loader
    from beancount.core import data

    entries, errors, _options = loader.load_file(str(path))
    return [e for e in entries if isinstance(e, data.Transaction)], errors


def test_beancount_export_loads_without_errors_and_balances_like_the_journal(booked, tmp_path):
    from beancount.core import data

    path = tmp_path / "books.beancount"
    result = booked.exports.export("beancount", path)
    assert (result.written, result.total) == (7, 7)
    transactions, errors = beancount_errors(path)
    assert errors == []
    assert len(transactions) == 7
    sums: dict[str, Decimal] = {}
    for txn in transactions:
        assert isinstance(txn, data.Transaction) and "crm-entry" in txn.meta
        for posting in txn.postings:
            sums[posting.account] = sums.get(posting.account, D(0)) + posting.units.number
    journal = {b["account"]: b["balance"] for b in booked.journal.balances()}
    assert {a: v for a, v in sums.items() if v} == {a: v for a, v in journal.items() if v}
    assert sums["Liabilities:CustomerCredit"] == D("-12.00")


@pytest.mark.skipif(LEDGER is None, reason="the ledger program is not installed (make system-deps installs it)")
def test_ledger_export_is_read_by_the_ledger_program(booked, tmp_path):
    path = tmp_path / "books.ledger"
    booked.exports.export("ledger", path)
    run = subprocess.run([LEDGER, "-f", str(path), "--strict", "balance"], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and run.stderr == ""
    lines = {line.split()[-1]: line.split()[0] for line in run.stdout.splitlines() if line.strip() and "EUR" in line}
    assert lines["Bank"] == "250.00"
    register = subprocess.run([LEDGER, "-f", str(path), "register", "Receivable"], capture_output=True, text=True,
                              check=True)  # fmt: skip
    assert register.stdout.count("Assets:Receivable") == 5  # three invoices, a credit note, a payment


def test_csv_journal_has_one_row_per_posting(booked, tmp_path):
    path = tmp_path / "journal.csv"
    booked.exports.export("csv", path, start="2026-01-01", end="2026-01-31")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["entry_id"] for r in rows} == {"1", "2", "3", "4"}
    assert sum(D(r["amount"]) for r in rows) == 0
    assert sum(D(r["debit"] or 0) for r in rows) == sum(D(r["credit"] or 0) for r in rows)
    assert any(r["document"] == "INV-2026-00002" and r["payee"] == "Grace Hopper" for r in rows)


@pytest.mark.parametrize("fmt", ["beancount", "ledger", "csv"])
def test_export_is_incremental_and_idempotent(booked, ada, tmp_path, fmt):
    path = tmp_path / f"books.{fmt}"
    assert booked.exports.export(fmt, path, end="2026-01-31").written == 4
    assert booked.exports.export(fmt, path, end="2026-01-31").written == 0
    before = path.read_bytes()
    assert booked.exports.export(fmt, path).written == 3  # February's
    assert path.read_bytes().startswith(before)  # appended, never rewritten
    booked.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    assert booked.exports.export(fmt, path).written == 1
    assert booked.exports.export(fmt, path).written == 0
    [state] = booked.exports.states()
    assert (state["entries"], state["last_entry_id"]) == (8, 8)
    if fmt == "beancount":
        transactions, errors = beancount_errors(path)
        assert errors == [] and len(transactions) == 8


def test_a_crash_after_writing_duplicates_nothing(booked, tmp_path, monkeypatch):
    path = tmp_path / "books.beancount"

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:  # the file is renamed into place, then the process dies
        patch.setattr(Exporter, "_record", crash)
        with pytest.raises(RuntimeError):
            booked.exports.export("beancount", path)
    assert booked.exports.states() == []
    again = booked.exports.export("beancount", path)
    assert (again.written, again.total) == (0, 7)
    transactions, errors = beancount_errors(path)
    assert errors == [] and len(transactions) == 7


def test_a_crash_while_writing_leaves_the_old_file(booked, ada, tmp_path, monkeypatch):
    path = tmp_path / "books.ledger"
    booked.exports.export("ledger", path)
    before = path.read_bytes()
    booked.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    with monkeypatch.context() as patch:
        patch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError):
            booked.exports.export("ledger", path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["books.ledger"]
    assert booked.exports.export("ledger", path).written == 1


def test_bad_export_requests_are_refused(books, tmp_path):
    with pytest.raises(ValidationError) as refused:
        books.exports.export("gnucash", tmp_path / "x", start="2026-02-30", end="2026-01-01")
    assert set(refused.value.errors) == {"format", "from"}
    foreign = tmp_path / "other.csv"
    foreign.write_text("date,amount\n2026-01-01,5\n")
    with pytest.raises(ValidationError, match="not a journal CSV"):
        books.exports.export("csv", foreign)


def test_export_command(cli, booked, tmp_path):
    path = tmp_path / "books.beancount"
    args = ("accounting", "export", "--format", "beancount", "--from", "2026-02-01", "--output", str(path))
    first = cli(*args)
    assert first.exit_code == 0, first.output
    assert "3 new entries written" in first.output
    assert "0 new entries written" in cli(*args).output
    refused = cli("accounting", "export", "--format", "beancount", "--from", "soon", "--output", str(path))
    assert refused.exit_code == 1 and "from:" in refused.output
