"""``crm accounting``: what a user types and sees."""

from __future__ import annotations

import json


def test_invoice_commands(cli, ada, products):
    made = cli("accounting", "invoice", "create", "ada@example.com", "--line", "sku=PRO,quantity=2,discount=10",
               "--line", "description=Setup,price=150,taxes=VAT19+CITY", "--terms", "14")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.output.strip() == "invoice INV-2026-00001: 395.70 EUR, due 2026-01-19"
    shown = json.loads(cli("accounting", "invoice", "show", "INV-2026-00001", "--format", "json").output)
    assert [(li["description"], li["quantity"], li["discount"], li["net"]) for li in shown["lines"]] == [
        ("CRM Pro licence", "2", "10", "180.00"), ("Setup", "1", "0", "150.00")]
    table = cli("accounting", "invoice", "show", "INV-2026-00001").output
    assert "CRM Pro licence" in table and "395.70" in table
    listing = cli("accounting", "invoice", "list", "--format", "csv").output.splitlines()
    assert listing[0] == "number,kind,contact_id,issued_on,due_on,currency,total,open_amount,status"
    assert listing[1] == "INV-2026-00001,invoice,1,2026-01-05,2026-01-19,EUR,395.70,395.70,open"
    note = cli("accounting", "credit-note", "INV-2026-00001", "--reason", "goodwill",
               "--line", "description=Goodwill,price=10")  # fmt: skip
    assert note.output.strip() == "credit note CN-2026-00001 for INV-2026-00001: 11.90 EUR"
    balance = json.loads(cli("accounting", "balance", "ada@example.com", "--format", "json").output)
    assert balance["open_balance"] == {"EUR": "383.80"}
    trial = cli("accounting", "trial-balance", "--format", "csv").output
    assert "Assets:Receivable,EUR,383.80" in trial


def test_errors_are_one_line_and_exit_1(cli, ada, products):
    bad = cli("accounting", "invoice", "create", "ada@example.com", "--line", "sku=PRO,quantity=-1")
    assert bad.exit_code == 1 and "refunds are credit notes" in bad.output
    malformed = cli("accounting", "invoice", "create", "ada@example.com", "--line", "PRO x2")
    assert malformed.exit_code == 1 and "is not NAME=VALUE" in malformed.output
    unknown = cli("accounting", "invoice", "show", "INV-2026-00042")
    assert unknown.exit_code == 1 and "no invoice 'INV-2026-00042'" in unknown.output


def test_journal_commands(cli, books, ada, products):
    books.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    entries = cli("accounting", "entries", "--format", "csv").output.splitlines()
    assert entries[0] == "entry,posted_on,narration,account,amount,currency" and len(entries) == 4
    reversed_ = cli("accounting", "reverse", "1", "--reason", "mistake")
    assert reversed_.output.strip() == "entry 2 reverses entry 1"
    assert "already reversed" in cli("accounting", "reverse", "1", "--reason", "again").output
    assert cli("accounting", "overdue").output.strip() == "(none)"
