"""Every Python block of docs/reports.md runs, and its plugins do what the page says."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crmcore.testing.reportdata import generate

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reports.md"


@pytest.fixture
def page() -> dict[str, Any]:
    """The page's Python blocks, run in order in one namespace (the first uses a ``crm``)."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 3
    return {"blocks": blocks}


def run_blocks(blocks: list[str], crm: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"crm": crm, "print": lambda *args: None}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    return namespace


def test_the_example_report_registers_runs_and_reaches_the_dashboard(crm_factory, page):
    plain = crm_factory()
    generate(plain, contacts=40, seed=3)
    namespace = run_blocks(page["blocks"], plain)  # the usage block runs against a real CRM
    crm = crm_factory(plugins=[namespace["LanguageReports"]()])
    crm.leads.capture(email="ada@example.com", language="en")
    crm.leads.capture(email="bea@example.com", language="en", do_not_contact=True)
    crm.leads.capture(email="cem@example.com", language="fa")

    result = crm.reports.run("example.languages")
    assert [(r["language"], r["contacts"], r["opted_out"]) for r in result.rows] == [("en", 2, 0.5), ("fa", 1, 0.0)]
    assert crm.reports.get("example.languages").plugin == "LanguageReports"
    weekly = crm.reports.run("example.languages", by="week", start="2025-12-29", end="2026-01-18")
    assert [(r["week"], r["contacts"]) for r in weekly.rows] == [
        ("2025-12-29", 0),
        ("2026-01-05", 3),
        ("2026-01-12", 0),
    ]
    mains = [r.name for r in crm.reports.main_reports()]
    assert mains[-1] == "example.languages" and mains[0].startswith(("marketing.", "sales."))


def test_the_example_cost_contribution_reaches_roi(crm_factory, page):
    namespace = run_blocks(page["blocks"][1:2], None)
    crm = crm_factory(plugins=[namespace["SponsorshipCosts"]()])
    generate(crm, contacts=60, seed=4)
    without = {r["campaign"]: r["cost"] for r in crm.reports.run("marketing.roi", start="2025-06-01",
                                                                 end="2025-06-30").rows}  # fmt: skip
    plain = crm_factory()
    generate(plain, contacts=60, seed=4)
    base = {r["campaign"]: r["cost"] for r in plain.reports.run("marketing.roi", start="2025-06-01",
                                                                end="2025-06-30").rows}  # fmt: skip
    assert without["launch"] - base["launch"] == Decimal("2500.00")
    july = {"start": date(2025, 7, 1), "end": date(2025, 7, 31)}
    with_fee = {r["campaign"]: r["cost"] for r in crm.reports.run("marketing.roi", **july).rows}
    without_fee = {r["campaign"]: r["cost"] for r in plain.reports.run("marketing.roi", **july).rows}
    assert with_fee.get("launch") == without_fee.get("launch")  # the fee is dated June
