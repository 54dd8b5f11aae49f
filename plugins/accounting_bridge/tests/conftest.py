"""Fixtures of the accounting bridge tests: the services, a customer, products, German VAT."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crmcore_accounting_bridge import accounting


@pytest.fixture
def crm_plugins() -> list[str]:
    return ["accounting_bridge"]


@pytest.fixture
def accounting_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The plugin's settings; change them with ``parametrize(..., indirect=True)``."""
    defaults = {
        "tax_rates": {"VAT19": "0.19", "VAT7": "0.07", "CITY": "0.02"},
        "default_taxes": ["VAT19"],
        "product_taxes": {"BOOK": ["VAT7"]},
        "file_drop_dir": str(tmp_path / "drop"),
    }
    return {**defaults, **getattr(request, "param", {})}


@pytest.fixture
def crm_settings(accounting_settings: dict[str, Any]) -> dict[str, Any]:
    return {"plugin_settings": {"accounting_bridge": accounting_settings}, "currency": "EUR"}


@pytest.fixture
def books(crm: Any) -> Any:
    """``accounting(crm)``: invoices, payments, journal, exports."""
    return accounting(crm)


@pytest.fixture
def products(crm: Any) -> dict[str, Any]:
    """PRO (100.00 EUR, software), BOOK (20.00 EUR, books, 7 % VAT), USD-priced TOOL."""
    return {
        "PRO": crm.products.add("PRO", "CRM Pro licence", unit_price=Decimal("100.00"), currency="EUR",
                                category="software"),
        "BOOK": crm.products.add("BOOK", "The CRM book", unit_price=Decimal("20.00"), currency="EUR", category="books"),
        "TOOL": crm.products.add("TOOL", "US tool", unit_price=Decimal("50.00"), currency="USD", category="software"),
    }


@pytest.fixture
def ada(crm: Any) -> Any:
    """A customer: Ada Lovelace."""
    return crm.leads.capture(email="ada@example.com", first_name="Ada", last_name="Lovelace")


@pytest.fixture
def grace(crm: Any) -> Any:
    """Another customer: Grace Hopper."""
    return crm.leads.capture(email="grace@example.com", first_name="Grace", last_name="Hopper")
