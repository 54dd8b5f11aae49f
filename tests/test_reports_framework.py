"""The report framework as users meet it: bad input, time zones, empty periods, zero denominators, the CLI."""

from __future__ import annotations

import csv
import io
import json
import warnings
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from crmcore import hookimpl
from crmcore.errors import ConfigError, NotFound, ValidationError
from crmcore.models import AdSpend, Contact, LifecycleChange
from crmcore.reports import Report, count
from crmcore.reports.sql import offset_at, period_labels, zone_transitions
from crmcore.testing.reportdata import generate


class Segments:
    @hookimpl
    def crm_segment_query(self, name: str, ctx: Any) -> Any:
        return select(Contact.id).where(Contact.country == "DE") if name == "germans" else None

    @hookimpl
    def crm_segment_names(self, ctx: Any) -> list[str]:
        return ["germans", "vips"]


# -- bad input ---------------------------------------------------------------------------


def test_unknown_report_lists_the_reports(crm):
    with pytest.raises(NotFound) as caught:
        crm.reports.run("marketing.add")
    assert "no report named 'marketing.add'" in str(caught.value)
    assert "marketing.ads" in str(caught.value) and "sales.pipeline" in str(caught.value)


def test_every_bad_parameter_is_reported_at_once_with_what_is_valid(crm):
    with pytest.raises(ValidationError) as caught:
        crm.reports.run(
            "marketing.ads", start="2026-13-01", end="last week", by="colour",
            params={"rank": "loudness", "currency": "EURO", "colour": "red"},
        )  # fmt: skip
    errors = caught.value.errors
    assert errors["from"] == "'2026-13-01' is not a date (YYYY-MM-DD)"
    assert errors["to"] == "'last week' is not a date (YYYY-MM-DD)"
    assert errors["by"] == "unknown grouping 'colour' for marketing.ads; groupings: ad, campaign, source"
    assert errors["param rank"] == "'loudness' is not one of ctr, conversion_rate, clicks, conversions"
    assert "three-letter currency code" in errors["param currency"]
    assert errors["param colour"] == "unknown parameter of marketing.ads; parameters: rank, currency"


def test_reversed_range_is_refused(crm):
    with pytest.raises(ValidationError) as caught:
        crm.reports.run("sales.conversion", start="2026-02-01", end="2026-01-01")
    assert caught.value.errors == {"to": "2026-01-01 is before from (2026-02-01): give the earlier date first"}
    with pytest.raises(ValidationError, match="not a date and time"):
        crm.reports.run("sales.conversion", start=datetime(2026, 1, 1, tzinfo=UTC))


def test_bad_values_of_typed_parameters(crm):
    with pytest.raises(ValidationError) as caught:
        crm.reports.run("marketing.products", params={"band": "-5"})
    assert caught.value.errors == {"param band": "'-5' is not a positive whole number"}
    with pytest.raises(ValidationError, match="param pipeline: no pipeline 'enterprise'; pipelines: sales"):
        crm.reports.run("sales.pipeline", params={"pipeline": "enterprise"})


def test_custom_field_groupings_come_from_the_declared_fields(crm):
    generate(crm, contacts=20)  # declares the contact field "plan"
    assert crm.reports.run("marketing.demographics", by="custom.plan", params={"stage": "all"}).rows
    with pytest.raises(ValidationError) as caught:
        crm.reports.run("marketing.demographics", by="custom.shoe_size")
    assert "custom.plan" in caught.value.errors["by"] and "age_band" in caught.value.errors["by"]


def test_unknown_segment_without_any_segments(crm):
    with pytest.raises(ValidationError) as caught:
        crm.reports.run("sales.conversion", segment="germans")
    assert caught.value.errors == {"segment": "no segment named 'germans'"}


def test_unknown_segment_lists_the_segments_that_exist(crm_factory):
    crm = crm_factory(plugins=[Segments()])
    with pytest.raises(ValidationError) as caught:
        crm.reports.run("sales.conversion", segment="germnas")
    assert caught.value.errors == {"segment": "no segment named 'germnas'; segments: germans, vips"}


def test_a_segment_restricts_the_contacts(crm_factory):
    crm = crm_factory(plugins=[Segments()])
    crm.leads.capture(email="de@example.com", country="DE", source="google")
    crm.leads.capture(email="fr@example.com", country="FR", source="google")
    everyone = crm.reports.run("sales.conversion")
    germans = crm.reports.run("sales.conversion", segment="germans")
    assert everyone.rows[0]["leads"] == 2 and germans.rows[0]["leads"] == 1
    assert germans.parameters["segment"] == "germans"


def test_a_report_name_registered_twice_names_both_plugins(crm_factory):
    clash = Report(name="sales.pipeline", title="Mine", description="", build=lambda q: select(),
                   columns=(count("n", "N"),), default_by="x", groupings=("x",))  # fmt: skip

    class Clash:
        @hookimpl
        def crm_register_reports(self) -> list[Report]:
            return [clash]

    crm = crm_factory(plugins=[Clash()])
    with pytest.raises(
        ConfigError, match=r"'sales\.pipeline' is registered twice: by plugin 'Clash' and by plugin 'core'"
    ):
        crm.reports.list()


# -- zones, periods, zeros ----------------------------------------------------------------


def test_new_york_transitions_are_found_to_the_second():
    instants, offsets = zone_transitions("America/New_York", datetime(2025, 1, 1, tzinfo=UTC),
                                         datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    assert instants == (datetime(2025, 3, 9, 7, tzinfo=UTC), datetime(2025, 11, 2, 6, tzinfo=UTC))
    assert offsets == (-5 * 3600, -4 * 3600, -5 * 3600)
    assert offset_at("Asia/Tehran", datetime(2026, 1, 1, tzinfo=UTC)) == 3 * 3600 + 1800


def test_period_labels_cover_every_period():
    assert period_labels(date(2025, 12, 30), date(2026, 1, 6), "week") == ["2025-12-29", "2026-01-05"]
    assert period_labels(date(2025, 11, 15), date(2026, 2, 1), "quarter") == ["2025-Q4", "2026-Q1"]
    assert period_labels(date(2025, 1, 31), date(2025, 3, 1), "month") == ["2025-01", "2025-02", "2025-03"]


@pytest.mark.parametrize(
    ("zone", "month", "included"),
    [("UTC", "2025-03", False), ("Europe/Berlin", "2025-04", True), ("America/New_York", "2025-03", False),
     ("Asia/Tehran", "2025-04", True)],
)  # fmt: skip
def test_a_touch_near_midnight_falls_in_the_local_day(crm_factory, zone, month, included):
    crm = crm_factory(timezone=zone)
    lead = crm.leads.capture(email="ada@example.com")
    crm.touchpoints.record(lead.id, kind="ad_click", occurred_at="2025-03-31T23:30:00+00:00", source="google")
    by_month = crm.reports.run("marketing.channels", by="month", params={"kind": "ad_click"})
    assert [(r["month"], r["touchpoints"]) for r in by_month.rows] == [(month, 1)]
    april = crm.reports.run("marketing.channels", start="2025-04-01", end="2025-04-30", params={"kind": "ad_click"})
    assert bool(april.rows) is included
    day = crm.reports.run("marketing.channels", by="day", start="2025-03-31", end="2025-04-01",
                          params={"kind": "ad_click"})  # fmt: skip
    assert {r["day"]: r["touchpoints"] for r in day.rows} == (
        {"2025-03-31": 0, "2025-04-01": 1} if included else {"2025-03-31": 1, "2025-04-01": 0}
    )


def test_empty_periods_are_listed_with_zeros_and_empty_rates(crm):
    crm.leads.capture(email="ada@example.com", source="google")  # captured 2026-01-05
    result = crm.reports.run("sales.conversion", by="month", start="2025-11-01", end="2026-02-28")
    assert [r["month"] for r in result.rows] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    november = result.rows[0]
    assert november == {"month": "2025-11", "leads": 0, "qualified": 0, "customers": 0, "qualification_rate": None,
                        "conversion_rate": None}  # fmt: skip
    assert result.rows[2]["leads"] == 1 and result.rows[2]["conversion_rate"] == 0.0


def test_nothing_at_all_is_an_empty_report_not_an_error(crm):
    for report in crm.reports.list():
        result = crm.reports.run(report.name)
        assert all(row.get("opportunities", 0) == 0 for row in result.rows), report.name


def test_zero_impressions_and_zero_clicks_give_empty_rates(crm):
    with crm.transaction() as ctx:
        spend = AdSpend(day=date(2025, 5, 1), source="google", campaign="spring", ad="ad-a", impressions=0,
                        platform_clicks=0, spend=Decimal("12.50"), currency="USD", imported_at=ctx.now)  # fmt: skip
        ctx.session.add(spend)
    lead = crm.leads.capture(email="ada@example.com")
    crm.touchpoints.record(lead.id, kind="ad_click", occurred_at="2025-05-01T10:00:00+00:00", ad="ad-b")
    rows = {r["ad"]: r for r in crm.reports.run("marketing.ads").rows}
    assert rows["ad-a"]["ctr"] is None and rows["ad-a"]["conversion_rate"] is None
    assert rows["ad-a"]["cost_per_click"] is None and rows["ad-a"]["spend"] == Decimal("12.50")
    assert rows["ad-b"]["ctr"] is None and rows["ad-b"]["conversion_rate"] == 0.0
    roi = crm.reports.run("marketing.roi").rows
    spring = next(r for r in roi if r["campaign"] == "spring")
    assert spring["roi_first"] == -1.0 and spring["cpa_first"] is None


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def data(crm):
    return generate(crm, contacts=80, seed=5)


def test_cli_list_show_and_run_in_every_format(cli, data):
    listing = json.loads(cli("report", "list", "--format", "json").output)
    assert {"name": "marketing.roi", "plugin": "core", "main": True,
            "title": "ROI and cost per acquisition, first-touch and last-touch"} in listing  # fmt: skip
    shown = cli("report", "show", "marketing.demographics").output
    assert "custom.plan" in shown and "age_band" in shown and "stage:" in shown

    table = cli("report", "run", "sales.conversion", "--from", "2025-01-01", "--to", "2025-12-31", "--by", "quarter")
    assert table.exit_code == 0
    header, _rule, *lines = table.output.splitlines()
    assert header.split()[:3] == ["quarter", "Leads", "Qualified"] and len(lines) == 4 and "%" in lines[0]

    as_json = json.loads(cli("report", "run", "sales.conversion", "--from", "2025-01-01", "--to", "2025-12-31",
                             "--by", "quarter", "--format", "json").output)  # fmt: skip
    assert as_json["report"] == "sales.conversion" and as_json["parameters"]["by"] == "quarter"
    assert [c["type"] for c in as_json["columns"]] == ["period", "integer", "integer", "integer", "percent", "percent"]
    csv_text = cli("report", "run", "sales.conversion", "--from", "2025-01-01", "--to", "2025-12-31", "--by", "quarter",
                   "--format", "csv").output  # fmt: skip
    as_csv = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["quarter"] for r in as_csv] == ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"]
    for from_json, from_csv in zip(as_json["rows"], as_csv, strict=True):
        assert from_csv["leads"] == str(from_json["leads"])
        assert float(from_csv["conversion_rate"]) == from_json["conversion_rate"]


def test_cli_params_and_money_in_json(cli, data):
    result = cli("report", "run", "marketing.products", "--by", "price_band", "--param", "band=100",
                 "--param", "currency=USD", "--format", "json")  # fmt: skip
    rows = json.loads(result.output)["rows"]
    assert rows[0]["price_band"] == "0-100" and isinstance(rows[0]["revenue"], str)
    assert Decimal(rows[0]["revenue"]) > 0


def test_cli_errors_are_one_line(cli, data):
    bad = cli("report", "run", "marketing.ads", "--by", "colour", "--from", "2026-13-01")
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        "error: from: '2026-13-01' is not a date (YYYY-MM-DD); "
        "by: unknown grouping 'colour' for marketing.ads; groupings: ad, campaign, source"
    ]
    malformed = cli("report", "run", "marketing.ads", "--param", "rank")
    assert malformed.exit_code == 1 and "'rank' is not NAME=VALUE" in malformed.output
    unknown = cli("report", "run", "nope")
    assert unknown.exit_code == 1 and "no report named 'nope'; reports: marketing.ads" in unknown.output


@pytest.mark.slow  # the dashboard draws nine matplotlib charts: a few seconds
def test_cli_output_file_and_dashboard(cli, data, tmp_path):
    target = tmp_path / "ads.csv"
    result = cli("report", "run", "marketing.ads", "--format", "csv", "--output", str(target))
    assert result.exit_code == 0
    assert target.read_text(encoding="utf-8").startswith("ad,impressions,clicks,ctr,")
    page = tmp_path / "dashboard.html"
    assert (
        cli("report", "dashboard", "--from", "2025-01-01", "--to", "2025-12-31", "--output", str(page)).exit_code == 0
    )
    html = page.read_text(encoding="utf-8")
    for title in ("Ads ranked by click-through", "Pipeline by stage", "Results per rep", "Forecast by close month"):
        assert title in html
    assert html.count("<svg") >= 5


def test_the_report_indexes_migrate_to_the_models_schema(crm):
    from crmcore.migrate import branch_heads, schema_diff

    assert len(branch_heads(crm, "core")) == 1
    assert schema_diff(crm) == []
    with crm.transaction() as ctx, warnings.catch_warnings():
        from sqlalchemy import inspect

        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")  # SQLite
        indexes = {i["name"]: i["column_names"] for i in inspect(ctx.session.connection()).get_indexes("touchpoint")}
    assert "ix_touchpoint_contact_kind_time" in indexes
    # core_0011: channels' distinct contacts per source, where the database has expression indexes
    catalog = {"sqlite": "SELECT name FROM sqlite_master", "postgresql": "SELECT indexname FROM pg_indexes"}
    if crm.engine.dialect.name in catalog:
        with crm.engine.connect() as connection:
            names = set(connection.exec_driver_sql(catalog[crm.engine.dialect.name]).scalars())
        assert "expr_touchpoint_source_contact" in names
    # core_0008: the clicks and conversions of a range, and the channels, are read from an index alone
    assert indexes["ix_touchpoint_kind_time"] == ["kind", "occurred_at", "contact_id", "quantity", "ad", "affiliate"]
    assert indexes["ix_touchpoint_time_channel"][:3] == ["occurred_at", "source", "utm_source"]


def test_the_covering_indexes_downgrade_and_upgrade_again(crm):
    from alembic import command
    from sqlalchemy import inspect

    from crmcore.migrate import alembic_config, schema_diff

    with crm.engine.begin() as connection:
        command.downgrade(alembic_config(crm, connection), "core_0007")
    with crm.engine.connect() as connection:
        indexes = {i["name"]: i["column_names"] for i in inspect(connection).get_indexes("touchpoint")}
    assert indexes["ix_touchpoint_kind_time"] == ["kind", "occurred_at"] and "ix_touchpoint_time_channel" not in indexes
    crm.db_upgrade()
    assert schema_diff(crm) == []


def test_a_cost_contribution_without_the_contracted_columns_names_the_plugin(crm_factory):
    from sqlalchemy import literal

    from crmcore.errors import PluginError

    class Sloppy:
        @hookimpl
        def crm_campaign_cost_contributions(self, query: Any, ctx: Any) -> list[Any]:
            return [select(literal(1).label("cost"))]

    crm = crm_factory(plugins=[Sloppy()])
    with pytest.raises(PluginError) as caught:
        crm.reports.run("marketing.roi")
    assert str(caught.value) == (
        "plugin 'Sloppy', hook crm_campaign_cost_contributions: "
        "returned a query without the column(s) day, source, campaign, affiliate, currency"
    )


def sqlite_plan(crm: Any, name: str, start: date | None, end: date | None, table: str) -> list[str]:
    """The steps of SQLite's plan for the statement of report *name* that reads *table* (after ANALYZE)."""
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    with crm.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    event.listen(crm.engine, "before_cursor_execute", record)
    try:
        crm.reports.run(name, start=start, end=end)
    finally:
        event.remove(crm.engine, "before_cursor_execute", record)
    statement, parameters = next((s, p) for s, p in statements if f"FROM {table}" in s and "GROUP BY" in s)
    with crm.engine.connect() as connection:
        return [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]


@pytest.mark.databases("sqlite")  # a SQLite query plan
def test_lead_conversion_over_a_range_walks_the_leads_in_contact_order(crm):
    """SQLite: a range must not steer the plan to (to_stage, occurred_at), which visits leads at random."""
    generate(crm, contacts=60, seed=3)
    plan = sqlite_plan(crm, "sales.conversion", date(2025, 3, 1), date(2025, 9, 30), "lifecycle_change")
    leads = next(step for step in plan if step.startswith("SEARCH lifecycle_change"))
    assert "ix_lifecycle_change_stage_contact (to_stage=?)" in leads, plan


@pytest.mark.databases("sqlite")  # a SQLite query plan
def test_channels_count_the_contacts_of_a_wide_range_in_source_order(crm):
    """SQLite: the distinct contacts of a wide range stream from core_0011's index, a narrow one reads by time."""
    generate(crm, contacts=60, seed=3)
    plan = sqlite_plan(crm, "marketing.channels", date(2025, 1, 1), date(2025, 12, 31), "touchpoint")
    assert "SCAN touchpoint USING INDEX expr_touchpoint_source_contact" in plan, plan
    narrow = sqlite_plan(crm, "marketing.channels", date(2025, 6, 1), date(2025, 6, 7), "touchpoint")
    assert not any("expr_touchpoint_source_contact" in step for step in narrow), narrow


@pytest.mark.databases("sqlite")  # a SQLite query plan
def test_ads_credit_each_conversion_from_the_click_index_alone(crm):
    """SQLite: the last click before each conversion, and its ad, come from the index, not the click's row."""
    generate(crm, contacts=60, seed=3)
    plan = sqlite_plan(crm, "marketing.ads", None, None, "touchpoint")
    lookups = [step for step in plan if step.startswith("SEARCH credited")]
    assert lookups and all("COVERING INDEX ix_touchpoint_contact_kind_time" in step for step in lookups), plan
    assert not any(step.startswith("SEARCH click") for step in plan), plan


def test_an_average_of_money_is_rounded_to_cents_once(crm):
    """100 units at 10.00 and one at 10.50 average 10.00495...: 10.00, not 10.0050 rounded again to 10.01."""
    crm.products.add("PRO", "CRM Pro licence", unit_price="10.00", currency="USD")
    buyer = crm.leads.capture(email="bulk@example.com")
    crm.customers.record_purchase(buyer.id, lines=[{"sku": "PRO", "price": "10.00", "quantity": 100},
                                                   {"sku": "PRO", "price": "10.50", "quantity": 1}])  # fmt: skip
    (row,) = crm.reports.run("marketing.products").rows
    assert (row["units"], row["revenue"], row["avg_price"]) == (101, Decimal("1010.50"), Decimal("10.00"))


@pytest.mark.databases("postgresql")  # the route PostgreSQL takes for a wide range
def test_lead_conversion_per_contact_gives_the_figures_of_the_probes(crm, monkeypatch):
    """PostgreSQL counts a wide range's leads per contact in one pass; the figures are the probes' exactly.

    Includes a merged contact (two lead rows, both counted), the source
    filter, ranges wide enough for the route, and each grouping.
    """
    from crmcore.reports import sales

    generate(crm, contacts=150, seed=11)
    with crm.engine.connect() as connection:
        ids = connection.scalars(select(Contact.id).order_by(Contact.id).limit(2)).all()
    crm.contacts.merge(ids[0], ids[1])
    with crm.engine.connect() as connection:  # a source whose only lead falls before the narrow range
        early = connection.scalar(select(LifecycleChange.contact_id).where(
            LifecycleChange.from_stage.is_(None), LifecycleChange.occurred_at < datetime(2025, 2, 1, tzinfo=UTC)
        ).order_by(LifecycleChange.occurred_at).limit(1))  # fmt: skip
    crm.contacts.update(early, source="lonely")
    runs = [
        {"by": by, "start": start, "end": end, **extra}
        for by in ("source", "owner", "country")
        for start, end in ((None, None), ("2025-01-01", "2025-12-31"), ("2025-02-01", "2025-11-30"))
        for extra in ({}, {"params": {"source": "google"}})
    ]
    chosen = []
    real = sales._per_contact_pays
    monkeypatch.setattr(sales, "_per_contact_pays", lambda query: chosen.append(real(query)) or chosen[-1])
    per_contact = [crm.reports.run("sales.conversion", **run).rows for run in runs]
    assert all(chosen) and len(chosen) == len(runs)
    monkeypatch.setattr(sales, "_per_contact_pays", lambda query: False)
    probed = [crm.reports.run("sales.conversion", **run).rows for run in runs]
    assert per_contact == probed
    assert any(row["leads"] for rows in probed for row in rows)
    lonely = [[row for row in rows if row.get("source") == "lonely"] for rows in probed]
    assert lonely[0] and not lonely[4]  # all time has its lead; the narrow range has no row for it
    with crm.engine.connect() as connection:
        two = connection.scalar(select(func.count()).select_from(LifecycleChange).where(
            LifecycleChange.contact_id == ids[0], LifecycleChange.from_stage.is_(None)))  # fmt: skip
    assert two == 2  # the survivor has both leads' first entries
