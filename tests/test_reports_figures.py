"""Every core report against the same figures computed in pure Python over the generated rows.

The CRM runs in New York time and the range crosses both daylight-saving
changes, so a day, week or month cut in UTC instead of local time shows up as
a difference. Runs on every configured database.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import Date, Numeric, String, literal, null, select

from crmcore import hookimpl
from crmcore.models import Contact
from crmcore.testing.reportdata import generate
from tests import report_reference as ref

ZONE = "America/New_York"
START, END = date(2025, 3, 1), date(2025, 11, 30)
DECIMALS = {"percent": 6, "number": 4, "days": 2}


class Segments:
    """A stand-in for the segments plugin: one segment, the contacts in Germany."""

    @hookimpl
    def crm_segment_query(self, name: str, ctx: Any) -> Any:
        return select(Contact.id).where(Contact.country == "DE") if name == "germans" else None

    @hookimpl
    def crm_segment_names(self, ctx: Any) -> list[str]:
        return ["germans"]


NEWSLETTER_COSTS = [
    {"day": date(2025, 6, 1), "source": "newsletter", "campaign": "summer", "affiliate": None,
     "cost": Decimal("1234.56"), "currency": "USD"},
    {"day": date(2025, 7, 1), "source": "newsletter", "campaign": "launch", "affiliate": None,
     "cost": Decimal("99.99"), "currency": "USD"},
    {"day": date(2024, 7, 1), "source": "newsletter", "campaign": "launch", "affiliate": None,
     "cost": Decimal("5000.00"), "currency": "USD"},  # outside the range
]  # fmt: skip


class CampaignBudgets:
    """Email marketing's stand-in: campaign costs through the collector hook."""

    @hookimpl
    def crm_campaign_cost_contributions(self, query: Any, ctx: Any) -> list[Any]:
        return [
            select(
                literal(row["day"], Date()).label("day"), literal(row["source"], String(255)).label("source"),
                literal(row["campaign"], String(255)).label("campaign"), null().label("affiliate"),
                literal(row["cost"], Numeric(18, 4)).label("cost"),
                literal(row["currency"], String(3)).label("currency"),
            )
            for row in NEWSLETTER_COSTS
        ]  # fmt: skip


@pytest.fixture
def crm_settings() -> dict[str, Any]:
    return {"timezone": ZONE}


@pytest.fixture
def crm_plugins() -> list[Any]:
    return [Segments(), CampaignBudgets()]


@pytest.fixture
def data(crm: Any) -> Any:
    return generate(crm, contacts=160, seed=8)


def scope(crm: Any, data: Any, **kwargs: Any) -> ref.Scope:
    return ref.Scope(data, ZONE, kwargs.pop("start", START), kwargs.pop("end", END), now=crm.clock.now(), **kwargs)


def assert_same(result: Any, expected: dict[Any, dict[str, Any]], min_rows: int = 2) -> None:
    """Same keys with the same figures; any extra row must be an empty period."""
    got = {row[result.key.name]: row for row in result.rows}
    assert len(got) == len(result.rows), "a key appears twice"
    filled = sum(1 for row in expected.values() if any(v for v in row.values()))
    assert filled >= min_rows, "too little data to compare"
    for key, want in expected.items():
        assert key in got, f"{result.report.name} by {result.key.name}: {key!r} missing"
        for column in result.columns[1:]:
            _same(column, got[key][column.name], want[column.name], f"{result.report.name}[{key!r}].{column.name}")
    for key in set(got) - set(expected):
        assert result.key.type == "period", f"{result.report.name}: unexpected row {key!r}"
        assert all(got[key][c.name] == c.empty for c in result.columns[1:]), f"period {key} is not empty"


def _same(column: Any, got: Any, want: Any, where: str) -> None:
    if want is None:
        assert got is None, f"{where}: {got!r}, expected None"
        return
    assert got is not None, f"{where}: None, expected {want!r}"
    if column.type == "integer":
        assert got == want, where
    elif column.type == "money":
        assert abs(got - Decimal(want).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) <= Decimal("0.01"), (
            f"{where}: {got} != {want}"
        )
    else:
        assert got == pytest.approx(float(want), abs=1.5 * 10 ** -DECIMALS[column.type]), f"{where}: {got} != {want}"


def run(crm: Any, name: str, by: str, **kwargs: Any) -> Any:
    return crm.reports.run(name, start=kwargs.pop("start", START), end=kwargs.pop("end", END), by=by, **kwargs)


def test_ads(crm, data):
    for by in ("ad", "campaign", "source"):
        assert_same(run(crm, "marketing.ads", by), ref.ads(scope(crm, data), by))


def test_affiliates_with_and_without_a_segment(crm, data):
    assert_same(run(crm, "marketing.affiliates", "affiliate"), ref.affiliates(scope(crm, data), "affiliate"))
    germans = {c["id"] for c in data["contact"] if c["country"] == "DE"}
    segmented = run(crm, "marketing.affiliates", "affiliate", segment="germans")
    expected = ref.affiliates(scope(crm, data, segment=germans), "affiliate")
    if sum(row["clicks"] for row in expected.values()) >= 2:
        assert_same(segmented, expected)
    assert sum(r["clicks"] for r in segmented.rows) < sum(r["clicks"] for r in run(crm, "marketing.affiliates",
                                                                                       "affiliate").rows)  # fmt: skip


def test_channels(crm, data):
    for by in ("source", "campaign", "utm_medium", "kind", "week", "month"):
        assert_same(run(crm, "marketing.channels", by), ref.channels(scope(crm, data), by))
    result = run(crm, "marketing.channels", "medium", params={"kind": "conversion", "currency": "eur"})
    assert_same(result, ref.channels(scope(crm, data, currency="EUR"), "medium", kind="conversion"))


def test_demographics(crm, data):
    for by, stage in [("country", "customer"), ("age_band", "all"), ("owner", "customer"),
                      ("organization.industry", "all"), ("custom.plan", "all"), ("language", "lead")]:  # fmt: skip
        result = run(crm, "marketing.demographics", by, params={"stage": stage})
        assert_same(result, ref.demographics(scope(crm, data), by, stage))


def test_products(crm, data):
    for by in ("product", "category", "price_band", "month"):
        result = run(crm, "marketing.products", by, params={"band": "100"} if by == "price_band" else {})
        assert_same(result, ref.products(scope(crm, data), by, 100 if by == "price_band" else 50))


def test_touches_before_conversion(crm, data):
    for by in ("touches", "source", "quarter"):
        assert_same(run(crm, "marketing.touches", by), ref.touches(scope(crm, data), by))


def test_roi_first_and_last_touch_with_plugin_costs(crm, data):
    for by in ("campaign", "source", "affiliate"):
        result = run(crm, "marketing.roi", by)
        assert_same(result, ref.roi(scope(crm, data), by, NEWSLETTER_COSTS))
        if by == "source":  # the newsletter's costs came only through the plugin's contribution
            newsletter = next(row for row in result.rows if row["source"] == "newsletter")
            assert newsletter["cost"] == Decimal("1334.55")


def test_lead_conversion(crm, data):
    for by in ("source", "owner", "country", "month", "week"):
        assert_same(run(crm, "sales.conversion", by), ref.conversion(scope(crm, data), by))
    result = run(crm, "sales.conversion", "quarter", params={"source": "google"})
    assert_same(result, ref.conversion(scope(crm, data), "quarter", source="google"))


def test_sales_cycle(crm, data):
    for by in ("month", "source", "owner"):
        assert_same(run(crm, "sales.cycle", by), ref.cycle(scope(crm, data), by))


def test_pipeline(crm, data):
    for by in ("stage", "owner"):
        result = crm.reports.run("sales.pipeline", by=by)
        assert_same(result, ref.pipeline(scope(crm, data, start=None, end=None), by))
    stages = [row["stage"] for row in crm.reports.run("sales.pipeline").rows]
    assert stages == ["Qualification", "Needs analysis", "Proposal", "Negotiation"]


def test_win_rate(crm, data):
    for by in ("month", "owner", "pipeline", "source"):
        # One pipeline exists, so grouping by pipeline gives one row.
        expected = ref.win_rate(scope(crm, data), by)
        assert_same(run(crm, "sales.win_rate", by), expected, 1 if by == "pipeline" else 2)


def test_reps(crm, data):
    for by in ("rep", "team"):
        assert_same(run(crm, "sales.reps", by), ref.reps(scope(crm, data), by))


def test_forecast(crm, data):
    start, end = date(2025, 4, 1), date(2026, 3, 31)
    for by in ("month", "quarter"):
        result = run(crm, "sales.forecast", by, start=start, end=end)
        assert_same(result, ref.forecast(scope(crm, data, start=start, end=end), by))
        unbounded = crm.reports.run("sales.forecast", by=by)
        assert_same(unbounded, ref.forecast(scope(crm, data, start=None, end=None), by))
        assert unbounded.rows[-1][by] is None  # opportunities without a close date come last


def test_every_core_report_is_covered_here():
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    names = {"ads", "affiliates", "channels", "demographics", "products", "touches", "roi", "conversion", "cycle",
             "pipeline", "win_rate", "reps", "forecast"}  # fmt: skip
    from crmcore.reports.marketing import MARKETING_REPORTS
    from crmcore.reports.sales import SALES_REPORTS

    assert {r.name.split(".")[1] for r in [*MARKETING_REPORTS, *SALES_REPORTS]} == names
    assert all(any(n in t for t in tested) for n in names)
