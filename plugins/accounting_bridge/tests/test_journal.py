"""The double-entry journal: balanced entries for invoices, credit notes and payments; never edited, only reversed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from crmcore_accounting_bridge.models import Entry, Posting
from sqlalchemy import func, select

from crmcore.errors import ConfigError, Conflict, ValidationError

D = Decimal


def _legs(entry: dict) -> dict[str, Decimal]:
    return {p["account"]: p["amount"] for p in entry["postings"]}


def test_invoice_credit_note_and_payment_post_balanced_entries(books, ada, products):
    invoice = books.invoices.create(ada.id, lines=[{"sku": "PRO", "quantity": 2}, {"sku": "BOOK"}])  # 200+38, 20+1.40
    books.invoices.credit_note(invoice.number, reason="book damaged", lines=[{"sku": "BOOK"}])
    books.payments.record(invoice.number, "238.00", reference="BANK-1")
    posted, credited, paid = books.journal.entries()
    assert _legs(posted) == {"Assets:Receivable": D("259.40"), "Income:Sales:Software": D("-200.00"),
                             "Income:Sales:Books": D("-20.00"), "Liabilities:Tax:VAT19": D("-38.00"),
                             "Liabilities:Tax:VAT7": D("-1.40")}  # fmt: skip
    assert _legs(credited) == {"Income:Sales:Books": D("20.00"), "Liabilities:Tax:VAT7": D("1.40"),
                               "Assets:Receivable": D("-21.40")}  # fmt: skip
    assert _legs(paid) == {"Assets:Bank": D("238.00"), "Assets:Receivable": D("-238.00")}
    for entry in (posted, credited, paid):
        assert sum(p["amount"] for p in entry["postings"]) == 0
    balances = {(b["account"]): b["balance"] for b in books.journal.balances()}
    assert balances["Assets:Receivable"] == 0 and balances["Assets:Bank"] == D("238.00")
    assert books.invoices.get(invoice.number)["status"] == "paid"


@pytest.mark.parametrize("accounting_settings", [{
    "accounts": {"receivable": "Assets:Debitoren", "tax": "Liabilities:Umsatzsteuer:{code}"},
    "revenue_accounts": {"software": "Income:Lizenzen"},
}], indirect=True)  # fmt: skip
def test_the_chart_of_accounts_is_configurable(books, ada, products):
    books.invoices.create(ada.id, lines=[{"sku": "PRO"}, {"sku": "BOOK"}])
    [entry] = books.journal.entries()
    assert set(_legs(entry)) == {"Assets:Debitoren", "Income:Lizenzen", "Income:Sales:Books",
                                 "Liabilities:Umsatzsteuer:VAT19", "Liabilities:Umsatzsteuer:VAT7"}  # fmt: skip


@pytest.mark.parametrize("accounting_settings", [{"accounts": {"bank": "Bank account"}}], indirect=True)
def test_an_invalid_account_name_is_a_configuration_error(crm, ada, products):
    from crmcore_accounting_bridge import accounting

    with pytest.raises(ConfigError, match="'Bank account' is not a valid account name"):
        accounting(crm).invoices.create(ada.id, lines=[{"sku": "PRO"}])


def test_an_unbalanced_entry_is_refused_and_nothing_is_written(crm, books):
    with pytest.raises(ValidationError, match=r"does not balance: debits and credits differ by 0\.01 EUR"):
        books.journal.post(narration="Typo", legs=[("Assets:Bank", "100.00"), ("Income:Sales", "-99.99")])
    with pytest.raises(ValidationError, match="invalid account name"):
        books.journal.post(narration="Bad", legs=[("Assets:Bank", "1"), ("sales", "-1")])
    with crm.transaction(readonly=True) as ctx:
        assert ctx.scalar(select(func.count(Entry.id))) == 0 and ctx.scalar(select(func.count(Posting.id))) == 0


def test_posted_entries_are_never_edited_only_reversed(crm, books, ada, products):
    books.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    [entry] = books.journal.entries()
    with pytest.raises(Conflict, match="never edited or deleted, only reversed"):
        with crm.transaction() as ctx:
            ctx.session.get(Posting, 1).amount = D("1")
    with pytest.raises(Conflict, match="only reversed"):
        with crm.transaction() as ctx:
            ctx.session.delete(ctx.session.get(Entry, entry["id"]))
    reversal = books.journal.reverse(entry["id"], reason="issued by mistake")
    assert reversal.reverses_id == entry["id"]
    assert all(b["balance"] == 0 for b in books.journal.balances())
    with pytest.raises(Conflict, match="already reversed"):
        books.journal.reverse(entry["id"], reason="again")
    assert _legs(books.journal.entries()[0]) == _legs(entry)  # the original is untouched
