"""The numbers: campaign, link and variant reports, and campaign costs in the core's ROI report."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest


@pytest.fixture
def engaged(crm: Any, em: Any, newsletter: Any, people: Any, smtp_server: Any, http: Any, run_due_jobs: Any,
            clock: Any) -> Any:  # fmt: skip
    """Spring sent to six; Ada and Grace opened, Ada clicked twice, Alan unsubscribed, Ada bought for 300."""
    from .test_tracking import _links

    em.campaigns.create("Spring", template="newsletter", segment="everyone", budget="200", cost="100.00")
    em.campaigns.send("Spring")
    run_due_jobs()
    for address in ("ada@example.com", "grace@example.com"):
        links = _links(smtp_server.to(address)[0])
        http.get(next(u for u in links if "/email/o/" in u).removeprefix("https://crm.example.com"))
    click = next(u for u in _links(smtp_server.to("ada@example.com")[0]) if "/r/s/" in u)
    for _ in range(2):
        http.get(click.removeprefix("https://crm.example.com"))
    em.suppressions.unsubscribe(crm.contacts.get("alan@example.com").id, em.campaigns.get("Spring").id)
    crm.products.add(sku="PRO", name="Pro plan")
    clock.advance(days=1)
    crm.customers.record_purchase("ada@example.com", sku="PRO", price="300.00")
    return em.campaigns.get("Spring")


def test_the_campaign_report_has_every_figure(crm, engaged, cli):
    [row] = crm.reports.run("email_marketing.campaigns", start="2026-01-01", end="2026-01-31").rows
    assert row["campaign"] == "Spring"
    assert (row["sent"], row["delivered"], row["bounced"], row["unique_opens"], row["unique_clicks"]) == (6, 6, 0, 2, 1)
    assert row["open_rate"] == pytest.approx(2 / 6, abs=1e-5) and row["click_through_rate"] == pytest.approx(
        1 / 6, abs=1e-5
    )
    assert (row["unsubscribes"], row["conversions"]) == (1, 1)
    assert (row["revenue"], row["cost"], row["roi"]) == (Decimal("300.00"), Decimal("100.00"), pytest.approx(2.0))
    assert crm.reports.run("email_marketing.campaigns", start="2026-02-01", end="2026-02-28").rows == []
    by_month = crm.reports.run("email_marketing.campaigns", start="2026-01-01", end="2026-02-28", by="month").rows
    assert [(r["month"], r["sent"]) for r in by_month] == [("2026-01", 6), ("2026-02", 0)]
    output = cli("report", "run", "email_marketing.campaigns", "--format", "json")
    assert output.exit_code == 0, output.output
    assert json.loads(output.output)["rows"][0]["conversions"] == 1


def test_the_link_report_counts_clicks_and_clicking_recipients(crm, engaged):
    [row] = crm.reports.run("email_marketing.links").rows
    assert (row["link"], row["clicks"], row["unique_clicks"]) == ("https://shop.example.com/spring?a=1&b=2", 2, 1)
    [by_campaign] = crm.reports.run("email_marketing.links", by="campaign", params={"campaign": "Spring"}).rows
    assert by_campaign["campaign"] == "Spring"


def test_campaign_costs_reach_the_core_roi_report(crm, engaged):
    rows = crm.reports.run("marketing.roi", start="2026-01-01", end="2026-01-31", by="campaign").rows
    spring = next(r for r in rows if r["campaign"] == "Spring")
    assert spring["cost"] == Decimal("100.00")
    assert spring["revenue_last"] == Decimal("300.00")  # Ada's email click is her last creditable touch


def test_the_variant_report_compares_subject_lines(crm_factory, email_settings, smtp_settings, smtp_server, clock):
    from crmcore_email_marketing import email_marketing
    from crmcore_email_marketing.models import Recipient
    from sqlalchemy import select

    from .conftest import TestSegments

    settings = {**email_settings, "batch_size": 50, "fill_chunk": 50}
    crm = crm_factory(plugins=["email_marketing", TestSegments()], **smtp_settings,
                      plugin_settings={"email_marketing": settings})  # fmt: skip
    em = email_marketing(crm)
    em.templates.create("t", subject="Plain", html="<p>Hi</p>")
    for index in range(20):
        crm.contacts.add(email=f"p{index}@example.com")
    em.campaigns.create("Test", template="t", segment="everyone")
    em.campaigns.ab_test("Test", {"A": "Subject A", "B": "Subject B"}, sample_percent=100, wait_minutes=30)
    em.campaigns.send("Test")
    crm.jobs.run_due()
    with crm.transaction(readonly=True) as ctx:
        [(campaign_id, contact_id)] = ctx.session.execute(
            select(Recipient.campaign_id, Recipient.contact_id).where(Recipient.variant == "A").limit(1)
        ).all()
    em.tracking.record_open(campaign_id, contact_id)
    clock.advance(minutes=31)
    crm.jobs.run_due()
    rows = {r["variant"]: r for r in crm.reports.run("email_marketing.variants").rows}
    assert set(rows) == {"Test / A", "Test / B"}
    assert rows["Test / A"]["unique_opens"] == 1 and rows["Test / A"]["winner"] == "yes"
    assert rows["Test / A"]["sent"] + rows["Test / B"]["sent"] == 20 and rows["Test / B"]["winner"] is None
