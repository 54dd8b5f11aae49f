"""Invoices: lines, taxes, rounding, numbering without gaps, credit notes, automatic invoicing, bad input."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from crmcore_accounting_bridge.calc import LineInput, Tax, compute
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.errors import Conflict, ValidationError

D = Decimal
VAT19 = Tax(code="VAT19", rate=D("0.19"))
VAT7 = Tax(code="VAT7", rate=D("0.07"))


def test_an_invoice_has_lines_taxes_totals_and_a_due_date(books, ada, products, clock):
    invoice = books.invoices.create(ada.id, lines=[
        {"sku": "PRO", "quantity": 2, "discount": "10"},           # 200 - 10 % = 180.00, VAT19 34.20
        {"sku": "BOOK", "quantity": 3},                            # 60.00, VAT7 (by SKU) 4.20
        {"description": "Setup", "price": "99.99", "taxes": ["VAT19", "CITY"]},  # 19.00 + 2.00
    ])
    shown = books.invoices.get(invoice.number)
    assert shown["number"] == "INV-2026-00001"
    assert shown["issued_on"].isoformat() == "2026-01-05" and shown["due_on"].isoformat() == "2026-02-04"
    assert [li["net"] for li in shown["lines"]] == [D("180.00"), D("60.00"), D("99.99")]
    assert shown["taxes"] == {"VAT19": "53.20", "VAT7": "4.20", "CITY": "2.00"}
    assert (shown["net_total"], shown["tax_total"], shown["total"]) == (D("339.99"), D("59.40"), D("399.39"))
    assert shown["status"] == "open" and shown["open_amount"] == D("399.39")


def test_numbers_are_per_series_and_year_without_gaps_even_after_a_refused_invoice(books, ada, products, clock):
    first = books.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    with pytest.raises(ValidationError):
        books.invoices.create(ada.id, lines=[{"sku": "PRO"}, {"sku": "NOPE"}])
    second = books.invoices.create(ada.id, lines=[{"sku": "BOOK"}])
    note = books.invoices.credit_note(first.number, reason="returned")
    clock.advance(days=365)
    next_year = books.invoices.create(ada.id, lines=[{"sku": "BOOK"}])
    assert [first.number, second.number, note.number, next_year.number] == [
        "INV-2026-00001", "INV-2026-00002", "CN-2026-00001", "INV-2027-00001"]


@pytest.mark.databases("sqlite", "postgresql", "mariadb")
def test_concurrent_issuers_get_consecutive_numbers(crm, books, ada, products):
    numbers: list[str] = []
    errors: list[Exception] = []

    def issue() -> None:
        try:
            for _ in range(4):
                numbers.append(books.invoices.create(ada.id, lines=[{"sku": "PRO"}]).number)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == [f"INV-2026-{n:05d}" for n in range(1, 17)]


def test_rounding_per_line_and_per_invoice_differ_as_documented():
    # Three lines of 0.10 at 19 %: per line 0.02 tax each (0.019 rounded) = 0.06; per invoice 0.057 → 0.06.
    # Three lines of 0.05 at 19 %: per line 0.01 each (0.0095) = 0.03; per invoice 0.0285 → 0.03.
    # 7 lines of 0.03 at 7 %: per line 0.00 each (0.0021) = 0.00; per invoice 0.0147 → 0.01.
    lines = [LineInput(quantity=D(1), unit_price=D("0.03"), taxes=(VAT7,))] * 7
    assert compute(lines, "EUR", "line").tax_total == D("0.00")
    assert compute(lines, "EUR", "invoice").tax_total == D("0.01")


def test_inclusive_prices_keep_the_gross_and_the_lines_add_up():
    lines = [LineInput(quantity=D(1), unit_price=D("10.00"), taxes=(VAT19,), tax_inclusive=True)] * 3
    for rule in ("line", "invoice"):
        result = compute(lines, "EUR", rule)
        assert result.total == D("30.00")
        assert sum(li.net for li in result.lines) == result.net_total
        assert result.net_total + result.tax_total == result.total
    assert compute(lines, "EUR", "line").tax_total == D("4.80")     # 1.60 (1.5966) × 3
    assert compute(lines, "EUR", "invoice").tax_total == D("4.79")  # 4.7899 once


def test_yen_has_no_minor_unit():
    result = compute([LineInput(quantity=D(3), unit_price=D("333.5"), taxes=(VAT19,))], "JPY", "line")
    assert result.net_total == D("1001") and result.taxes == {"VAT19": D("190")}


amounts = st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 50), amounts, st.integers(0, 100),
                       st.sampled_from([(), (VAT19,), (VAT7,), (VAT19, VAT7)])), min_size=1, max_size=8),
    st.booleans(), st.sampled_from(["line", "invoice"]),
)  # fmt: skip
def test_totals_always_add_up_to_the_cent(raw_lines, inclusive, rule):
    lines = [LineInput(quantity=D(q), unit_price=p, discount=D(d) / 100, taxes=t, tax_inclusive=inclusive)
             for q, p, d, t in raw_lines]  # fmt: skip
    result = compute(lines, "EUR", rule)
    assert result.total == result.net_total + result.tax_total
    assert sum(li.net for li in result.lines) == result.net_total
    assert sum(result.taxes.values()) == result.tax_total
    assert all(v == v.quantize(D("0.01")) for v in (result.total, result.net_total, *result.taxes.values()))
    if inclusive:
        assert result.total == sum(li.gross for li in result.lines)


def test_bad_input_is_refused_with_every_problem_and_nothing_written(books, ada, products):
    with pytest.raises(ValidationError) as refused:
        books.invoices.create(ada.id, lines=[
            {"sku": "PRO", "quantity": "-2"},
            {"sku": "TOOL"},
            {"description": "Gift", "price": "abc"},
            {"sku": "PRO", "taxes": ["GST"]},
            {"sku": "PRO", "colour": "red"},
        ])  # fmt: skip
    errors = refused.value.errors
    assert "refunds are credit notes" in errors["line 1 quantity"]
    assert "priced in USD" in errors["line 2 currency"]
    assert "not a number" in errors["line 3 price"]
    assert "unknown tax code 'GST'" in errors["line 4 taxes"]
    assert "unknown field(s) colour" in errors["line 5 line"]
    assert books.invoices.list() == [] and books.journal.entries() == []


def test_credit_notes_refund_in_part_or_whole_and_never_more(books, ada, products):
    invoice = books.invoices.create(ada.id, lines=[{"sku": "PRO", "quantity": 2}])  # 238.00
    partial = books.invoices.credit_note(invoice.number, reason="one licence returned",
                                         lines=[{"sku": "PRO", "quantity": -1}])  # fmt: skip
    assert (partial.kind, partial.total, partial.credits_invoice_id) == ("credit_note", D("119.00"), invoice.id)
    assert books.invoices.get(invoice.number)["open_amount"] == D("119.00")
    with pytest.raises(ValidationError, match="exceeds what is left to credit"):
        books.invoices.credit_note(invoice.number, reason="too much", lines=[{"sku": "PRO", "quantity": 2}])
    with pytest.raises(ValidationError, match="partly credited"):
        books.invoices.credit_note(invoice.number, reason="all of it")
    books.invoices.credit_note(invoice.number, reason="the other", lines=[{"sku": "PRO", "quantity": 1}])
    assert books.invoices.get(invoice.number)["status"] == "credited"


@pytest.mark.parametrize("accounting_settings", [{"auto_invoice": "both"}], indirect=True)
def test_won_opportunities_and_purchases_are_invoiced_once_automatically(crm, books, ada, grace, products):
    deal = crm.sales.create_opportunity(ada.id, name="Pro rollout", amount="1000", currency="EUR")
    crm.sales.win(deal.id)
    crm.customers.record_purchase(ada.id, sku="PRO", quantity=10, currency="EUR", opportunity_id=deal.id)
    crm.customers.record_purchase(grace.id, lines=[{"sku": "PRO"}, {"sku": "BOOK", "quantity": 2}], currency="EUR")
    invoices = books.invoices.list()
    assert sorted((i["source"], i["total"]) for i in invoices) == [
        ("opportunity:1", D("1190.00")), ("purchase:2", D("161.80"))]
    with pytest.raises(Conflict, match="already invoiced"):
        books.invoices.from_opportunity(deal.id)


def test_on_command_by_default(crm, books, ada, products):
    purchase = crm.customers.record_purchase(ada.id, sku="BOOK", currency="EUR")
    assert books.invoices.list() == []
    invoice = books.invoices.from_purchase(purchase.id)
    assert (invoice.total, invoice.source) == (D("21.40"), f"purchase:{purchase.id}")
    deal = crm.sales.create_opportunity(ada.id, name="Open deal", amount="10", currency="EUR")
    with pytest.raises(ValidationError, match="is open, not won"):
        books.invoices.from_opportunity(deal.id)


def test_many_invoices_in_one_transaction_all_or_nothing(books, ada, grace, products):
    with pytest.raises(ValidationError) as refused:
        books.invoices.create_many([
            {"contact": ada.id, "lines": [{"sku": "PRO"}]},
            {"contact": "nobody@example.com", "lines": [{"sku": "PRO"}]},
            {"contact": grace.id, "lines": [{"sku": "PRO", "quantity": 0}]},
        ])  # fmt: skip
    assert set(refused.value.errors) == {"invoice 2 contact", "invoice 3 line 1 quantity"}
    assert books.invoices.list() == []
    numbers = books.invoices.create_many([{"contact": ada.id, "lines": [{"sku": "PRO"}]},
                                          {"contact": "grace@example.com", "lines": [{"sku": "BOOK"}]}])  # fmt: skip
    assert numbers == ["INV-2026-00001", "INV-2026-00002"]
    assert [e["narration"] for e in books.journal.entries()] == ["Invoice INV-2026-00001", "Invoice INV-2026-00002"]


def test_an_erased_customer_keeps_the_books_and_gets_no_new_invoice(crm, books, ada, products):
    invoice = books.invoices.create(ada.id, lines=[{"sku": "PRO"}])
    crm.contacts.erase(ada.id)
    assert books.invoices.get(invoice.number)["total"] == D("119.00")
    with pytest.raises(ValidationError, match="erased"):
        books.invoices.create(ada.id, lines=[{"sku": "PRO"}])


def test_post_many_posts_each_invoice_alone_and_a_rerun_creates_nothing(crm, books, ada, grace, products):
    gone = crm.leads.capture(email="gone@example.com")
    crm.contacts.erase(gone.id)
    batch = [
        {"source": "shop:1", "contact": ada.id, "lines": [{"sku": "PRO"}]},
        {"source": "shop:2", "contact": grace.id, "lines": [{"sku": "NOPE"}]},
        {"source": "shop:3", "contact": "grace@example.com", "lines": [{"sku": "BOOK", "quantity": 2}]},
        {"source": "shop:3", "contact": ada.id, "lines": [{"sku": "BOOK"}]},
        {"contact": ada.id, "lines": [{"sku": "PRO"}]},
        {"source": "shop:4", "contact": gone.id, "lines": [{"sku": "PRO"}]},
        {"source": "shop:5", "contact": ada.id, "lines": [{"sku": "BOOK"}]},
    ]
    results = books.invoices.post_many(batch)
    assert [(r.action, r.number) for r in results] == [
        ("posted", "INV-2026-00001"), ("rejected", None), ("posted", "INV-2026-00002"), ("rejected", None),
        ("rejected", None), ("rejected", None), ("posted", "INV-2026-00003")]  # fmt: skip
    assert results[1].errors["line 1 sku"] == "no product with SKU 'NOPE'"
    assert results[3].errors == {"source": "shop:3 appears twice in the batch"}
    assert results[4].errors == {"source": "is required"}
    assert results[5].errors == {"contact": "this contact was erased"}
    assert [e["narration"] for e in books.journal.entries()] == [
        "Invoice INV-2026-00001", "Invoice INV-2026-00002", "Invoice INV-2026-00003"]  # fmt: skip
    assert books.invoices.get("INV-2026-00002")["total"] == D("42.80")
    assert {b["account"]: b["balance"] for b in books.journal.balances()}["Assets:Receivable"] == D("183.20")
    again = books.invoices.post_many(batch)
    assert [(r.action, r.number) for r in again if r.action != "rejected"] == [
        ("exists", "INV-2026-00001"), ("exists", "INV-2026-00002"), ("exists", "INV-2026-00002"),
        ("exists", "INV-2026-00003")]  # fmt: skip
    assert len(books.invoices.list()) == 3 and len(books.journal.entries()) == 3
    fixed = books.invoices.post_many([{**batch[1], "lines": [{"sku": "PRO"}]}])  # corrected, it lands alone
    assert [(r.action, r.number, r.source) for r in fixed] == [("posted", "INV-2026-00004", "shop:2")]
