"""`crm demo`: a simulated stretch of a CRM's life on a fresh SQLite file, a summary and the dashboard."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from crmcore.cli import build_cli
from crmcore.demo import PRODUCT_PLUGINS, run_demo

pytestmark = pytest.mark.slow


def test_the_demo_simulates_summarizes_writes_the_dashboard_and_starts_fresh_when_run_again(tmp_path):
    lines: list[str] = []
    first = run_demo(tmp_path / "demo.db", echo=lines.append, days=21)
    assert first["leads captured"] > 20
    assert first["leads qualified"] > 0 and first["touchpoints recorded"] > 0
    page = (tmp_path / "demo-dashboard.html").read_text(encoding="utf-8")
    assert "<svg" in page and "marketing" in page.lower()
    text = "\n".join(lines)
    assert "Captured" in text and str(tmp_path / "demo-dashboard.html") in text
    again: list[str] = []
    second = run_demo(tmp_path / "demo.db", echo=again.append, days=21)
    assert again[0].startswith("Replaced the previous demo")
    assert {k: v for k, v in second.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}


def test_crm_demo_runs_from_the_command_line_with_every_product_plugin(tmp_path):
    result = CliRunner().invoke(build_cli(), ["demo", "--output", str(tmp_path / "d.db"), "--days", "7"])
    assert result.exit_code == 0, result.output
    for plugin in PRODUCT_PLUGINS:
        assert plugin in result.output
    assert "Dashboard" in result.output


def test_a_quarter_of_the_demo_fills_the_marketing_reports(tmp_path):
    """The shop's conversions and the ad platforms' exports flow in: CTR, spend and conversions by ad and source."""
    from crmcore import CRM

    lines: list[str] = []
    counts = run_demo(tmp_path / "demo.db", echo=lines.append, days=90)
    assert counts["conversions posted by the shop"] == counts["purchases recorded"] > 0
    assert any(line.startswith("Marketing  ") for line in lines)
    crm = CRM(database_url=f"sqlite:///{tmp_path / 'demo.db'}", environment="test")
    try:
        ads = crm.reports.run("marketing.ads").rows
        assert ads and all(row["impressions"] > row["clicks"] > 0 and row["spend"] > 0 for row in ads)
        assert sum(row["conversions"] for row in ads) > 0  # credited to the buyers' last ad click
        channels = crm.reports.run("marketing.channels").rows
        assert sum(row["conversions"] for row in channels) == counts["conversions posted by the shop"]
        assert {"google", "direct"} <= {row["source"] for row in channels if row["conversions"]}
    finally:
        crm.dispose()
