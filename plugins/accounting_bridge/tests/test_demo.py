"""The accounting bridge's part of ``crm demo``: every purchase invoiced (payments come after weeks: `crm demo`)."""

from __future__ import annotations

import pytest

from crmcore.demo import run_demo


@pytest.mark.slow
def test_the_demo_invoices_every_purchase(tmp_path):
    figures = run_demo(tmp_path / "demo.db", echo=lambda _text: None, days=45, plugins=["accounting_bridge"])
    assert figures["invoices issued"] == figures["purchases recorded"] > 0
