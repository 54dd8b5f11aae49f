"""The accounting bridge's part of ``crm demo``: every purchase invoiced, customers paying."""

from __future__ import annotations

import pytest

from crmcore.demo import run_demo


@pytest.mark.slow
def test_the_demo_invoices_every_purchase_and_customers_pay(tmp_path):
    figures = run_demo(tmp_path / "demo.db", echo=lambda _text: None, days=90, plugins=["accounting_bridge"])
    assert figures["invoices issued"] == figures["purchases recorded"] > 0
    assert 0 < figures["invoices paid"] <= figures["invoices issued"]
