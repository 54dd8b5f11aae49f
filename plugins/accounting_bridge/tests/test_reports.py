"""Reports with the framework: revenue by product, rep and month; receivables ageing; days to pay."""

from __future__ import annotations

from decimal import Decimal

import pytest

D = Decimal


@pytest.fixture
def history(crm, books, ada, grace, products, clock):
    """Jan 5: Ada PRO×2 (rep Rita) and Grace BOOK×3; Feb 5: Ada BOOK, a PRO credited; payments in between."""
    rita = crm.users.add("rita@example.com", "Rita Rep")
    first = books.invoices.create(ada.id, lines=[{"sku": "PRO", "quantity": 2}], rep=rita.id)   # 238.00
    second = books.invoices.create(grace.id, lines=[{"sku": "BOOK", "quantity": 3}])          # 64.20, 30 days
    clock.advance(days=10)
    books.payments.record(first.number, "238.00")                                             # 10 days
    clock.advance(days=21)
    third = books.invoices.create(ada.id, lines=[{"sku": "BOOK"}], rep=rita.id)              # Feb 5, 21.40
    books.invoices.credit_note(first.number, reason="one licence back", lines=[{"sku": "PRO"}])
    clock.advance(days=4)
    books.payments.record(second.number, "64.20")                                             # 35 days, late
    return first, second, third


def rows(result, key):
    return {row[key]: row for row in result.rows}


def test_revenue_by_product_rep_and_month(crm, history):
    by_product = rows(crm.reports.run("accounting.revenue", by="product"), "product")
    assert (by_product["PRO"]["quantity"], by_product["PRO"]["revenue"]) == (1.0, D("100.00"))  # 2 sold, 1 credited
    assert by_product["BOOK"]["revenue"] == D("80.00") and by_product["BOOK"]["invoices"] == 2
    by_rep = rows(crm.reports.run("accounting.revenue", by="rep"), "rep")
    assert by_rep["Rita Rep"]["revenue"] == D("120.00") and by_rep[None]["revenue"] == D("60.00")
    by_month = rows(crm.reports.run("accounting.revenue", by="month", start="2026-01-01", end="2026-03-31"), "month")
    assert [by_month[m]["revenue"] for m in ("2026-01", "2026-02", "2026-03")] == [D("260.00"), D("-80.00"), D("0")]


def test_receivables_ageing(crm, books, history, clock):
    clock.advance(days=60)  # Apr 10: the Feb 5 invoice (due Mar 7) is 34 days overdue
    [row] = crm.reports.run("accounting.ageing", by="total").rows
    assert (row["invoices"], row["d31_60"], row["open"]) == (1, D("21.40"), D("21.40"))
    as_of = rows(crm.reports.run("accounting.ageing", by="customer", end="2026-02-08"), "customer")
    assert as_of["grace@example.com"]["d1_30"] == D("64.20")  # due Feb 4, paid Feb 9
    assert as_of["ada@example.com"]["current"] == D("21.40")  # the first is paid and credited
    assert set(as_of) == {"grace@example.com", "ada@example.com"}


def test_average_days_to_pay(crm, history):
    result = crm.reports.run("accounting.days_to_pay", by="customer")
    found = rows(result, "customer")
    assert found["ada@example.com"]["average_days"] == 10.0 and found["ada@example.com"]["on_time"] == 1.0
    assert found["grace@example.com"]["average_days"] == 35.0 and found["grace@example.com"]["on_time"] == 0.0


@pytest.mark.parametrize("accounting_settings", [{"auto_invoice": "won"}], indirect=True)
def test_attribution_credits_invoiced_revenue_when_sales_are_invoiced(crm, history):
    crm.customers.record_purchase("ada@example.com", sku="PRO", currency="EUR")  # not invoiced: not revenue
    result = crm.reports.run("marketing.roi", by="source")
    assert sum(row["revenue_last"] or 0 for row in result.rows) == D("180.00")


def test_attribution_keeps_purchases_when_invoicing_is_on_command(crm, history):
    crm.customers.record_purchase("ada@example.com", sku="PRO", currency="EUR")
    result = crm.reports.run("marketing.roi", by="source")
    assert sum(row["revenue_last"] or 0 for row in result.rows) == D("100.00")
