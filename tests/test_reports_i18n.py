"""The console's report dashboard in the page's language; the reports' English everywhere else.

Titles, descriptions, column labels, grouping and parameter names are English
where they are written (marked with ``N_``) and translated by the console's
catalogs; figures are formatted by Babel. The Python API, the CLI's table, CSV
and JSON and the standalone HTML page keep the English texts.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from babel.dates import format_date
from babel.numbers import format_currency, format_percent

from crmcore.testing.server import live_server

from .console_support import SETTINGS, client_for, seed

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ["ticketing", "surveys", "accounting_bridge", "email_marketing"]
PERSIAN = re.compile("[\u0600-\u06ff]")


def _catalog(plugin: str):
    from crmcore.console.i18n import LOCALE_DIR, compile_po

    folder = LOCALE_DIR if plugin == "core" else ROOT / "plugins" / plugin / f"crmcore_{plugin}" / "locale"
    return compile_po(folder / "fa" / "LC_MESSAGES" / "console.po", "fa")


@pytest.mark.databases("sqlite")  # the texts do not depend on the database
def test_every_report_text_the_dashboard_shows_has_a_persian_translation(crm_factory):
    """Each report's own texts are in its plugin's catalog (the core's in the core's); the names every report
    shares (from, to, by, periods, currency, "(none)") in the core's."""
    from crmcore.reports.i18n import GROUPING_PARTS, NONE_KEY, PARAMETER_NAMES, WEEK_OF
    from crmcore.reports.render import NO_DATA
    from crmcore.reports.sql import PERIODS

    crm = crm_factory(plugins=PLUGINS)
    core = _catalog("core")
    shared = [NONE_KEY, NO_DATA, WEEK_OF, *PARAMETER_NAMES, *PERIODS, *GROUPING_PARTS]
    missing = [text for text in shared if core.gettext(text) == text]
    reports = crm.reports.list()
    assert {r.plugin for r in reports} == {"core", *PLUGINS}
    for report in reports:
        own = _catalog(report.plugin)
        texts = [report.title, report.description, *(c.label for c in report.columns)]
        groupings = [] if callable(report.groupings) else [g for g in report.groupings if g not in PERIODS]
        names = [*groupings, report.default_by, *(p.name for p in report.params)]
        missing += [(report.name, text) for text in texts if own.gettext(text) == text]
        missing += [(report.name, name) for name in names if own.gettext(name) == name and core.gettext(name) == name]
    assert missing == []


@pytest.fixture
def shop(crm_factory):
    crm = crm_factory(plugins=["ticketing"], **SETTINGS)
    data = seed(crm)
    crm.products.add("PRO", "CRM Pro licence", unit_price="120.00", currency="USD")
    crm.customers.record_purchase(data["rita_lead"].id, sku="PRO", rep=data["users"]["rita"].id)
    with live_server(crm.asgi_app()) as url:
        data["url"] = url
        yield crm, data


def _section(html: str, report: str) -> str:
    found = re.search(rf'<section class="report" id="{report.replace(".", "-")}">(.*?)</section>', html, re.S)
    assert found, report
    return found.group(1)


def _table(section: str) -> tuple[list[str], list[list[str]]]:
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", section)
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(<td.*?)</tr>", section, re.S)]
    return headers, rows


def test_the_persian_dashboard_shows_translated_texts_and_local_figures(shop):
    crm, data = shop
    today = crm.clock.now().date()
    with client_for(data["url"], "mia@example.com") as client:
        client.cookies.set("crm_lang", "fa", path="/console")
        page = client.get("/console/reports", params={"from": "2020-01-01", "to": today.isoformat()})
    assert page.status_code == 200 and '<html lang="fa" dir="rtl">' in page.text
    html = page.text.replace("&#34;", '"').replace("&#39;", "'")
    for report in crm.reports.main_reports():  # no English title or description left
        assert report.title not in html and report.description not in html, report.name
    pipeline = _section(html, "sales.pipeline")
    assert "<h3>قیف فروش به تفکیک مرحله، با ارزش وزن‌دار</h3>" in pipeline
    headers, rows = _table(pipeline)
    assert headers == ["مرحله", "فرصت‌های فروش", "مبلغ", "مبلغ وزن‌دار", "میانگین عمر (روز)"]
    first = rows[0]
    assert first[0] == "ارزیابی اولیه" and first[1] == "2"  # the default pipeline's first stage, translated
    assert first[2] == format_currency(1349.50, "USD", locale="fa")  # 1,250.50 + 99, with its currency
    start = format_date(date(2020, 1, 1), "medium", locale="fa")
    assert f"<dt>از</dt><dd>{start}</dd>" in pipeline and "<dt>به تفکیک</dt><dd>مرحله</dd>" in pipeline
    assert "<dt>from</dt>" not in html
    reps = _section(html, "sales.reps")
    headers, rows = _table(reps)
    assert headers[0] == "کارشناس فروش" and "درآمد" in headers
    rita = next(row for row in rows if row[0] == "Rita Rep")  # data is shown as it was stored
    assert rita[headers.index("درآمد")] == format_currency(120, "USD", locale="fa")
    conversion = _section(html, "sales.conversion")
    headers, rows = _table(conversion)
    assert headers[0] == "منبع" and rows[0][0] == "(هیچ)"  # leads without a source: "(none)"
    assert rows[0][headers.index("نرخ تبدیل")] == format_percent(0.5, "#,##0.0%", locale="fa")  # 1 of 2 leads
    forecast = _section(html, "sales.forecast")
    assert "<dt>به تفکیک</dt><dd>ماه</dd>" in forecast and "ماه</th>" in forecast
    assert html.count("<svg") >= 2  # the pipeline's funnel and the reps' bars are drawn


def test_the_english_dashboard_keeps_the_reports_texts(shop):
    crm, data = shop
    with client_for(data["url"], "mia@example.com") as client:
        html = client.get("/console/reports").text.replace("&#34;", '"').replace("&#39;", "'")
    assert not PERSIAN.search(html.split("<main", 1)[-1])  # no Persian anywhere in the page's body
    for report in crm.reports.main_reports():
        assert f"<h3>{report.title}</h3>" in html and report.description in html, report.name
    headers, rows = _table(_section(html, "sales.pipeline"))
    assert headers == ["stage", "Opportunities", "Amount", "Weighted amount", "Avg age (days)"]
    assert rows[0][:3] == ["Qualification", "2", "$1,349.50"]
    assert "<dt>by</dt><dd>stage</dd>" in html and "crm report run sales.pipeline" in html


def test_the_cli_csv_json_and_standalone_html_stay_english(shop, cli):
    crm = shop[0]
    table = cli("report", "run", "sales.pipeline")
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split() == ["stage", "Opportunities", "Amount", "Weighted", "amount", "Avg",
                                                    "age", "(days)"]  # fmt: skip
    assert "Qualification" in table.output and "1,349.50" in table.output
    as_json = json.loads(cli("report", "run", "sales.pipeline", "--format", "json").output)
    assert as_json["title"] == "Pipeline by stage, with weighted value"
    assert [c["label"] for c in as_json["columns"]] == ["stage", "Opportunities", "Amount", "Weighted amount",
                                                        "Avg age (days)"]  # fmt: skip
    csv = cli("report", "run", "sales.conversion", "--format", "csv").output
    assert csv.splitlines()[0] == "source,leads,qualified,customers,qualification_rate,conversion_rate"
    page = cli("report", "run", "sales.pipeline", "--format", "html").output
    assert "<h3>Pipeline by stage, with weighted value</h3>" in page and "1,349.50" in page
    assert not PERSIAN.search(page)
    assert crm.reports.get("sales.conversion").columns[-1].label == "Conversion rate"  # the Python API


@pytest.fixture
def cli(shop):
    from crmcore.testing.helpers import run_cli

    return lambda *args: run_cli(shop[0], args)


@pytest.mark.databases("sqlite")
def test_chart_labels_are_shaped_and_in_the_pages_language(crm_factory):
    """matplotlib (3.11, libraqm) joins Arabic-script letters: the lam-alef ligature is one narrow glyph."""
    from matplotlib.textpath import TextPath

    from crmcore.console.app import environments
    from crmcore.reports.charts import chart_svg
    from crmcore.reports.i18n import PageLanguage

    def width(text: str) -> float:
        return float(TextPath((0, 0), text, size=10).get_extents().width)

    assert width("لا") < 0.8 * (width("ل") + width("ا"))  # drawn joined, not as two isolated letters
    crm = crm_factory(**SETTINGS)
    seed(crm)
    result = crm.reports.run("sales.pipeline")
    env = environments(crm).get("fa")
    persian = PageLanguage(gettext=env.console_gettext, formatter=env.console_formatter, currency="USD")
    english, translated = chart_svg(result), chart_svg(result, persian)
    assert english is not None and translated is not None
    assert english != translated and english == chart_svg(result)  # labels differ; each drawing is stable


def test_periods_and_figures_are_written_the_locales_way():
    from babel.dates import format_skeleton

    from crmcore.console.i18n import Formatter
    from crmcore.reports.i18n import PageLanguage
    from crmcore.reports.model import Column

    persian = PageLanguage(gettext=_catalog("core").gettext, formatter=Formatter("fa", "Asia/Tehran"), currency="IRR")
    english = PageLanguage(gettext=str, formatter=Formatter("en", "UTC"), currency="USD")
    assert persian.period("2026-01", "month") == format_skeleton("yMMMM", date(2026, 1, 1), locale="fa")
    assert english.period("2026-01", "month") == "January 2026" and english.period("2026-Q2", "quarter") == "Q2 2026"
    assert persian.period("2026-01-05", "week") == f"هفتهٔ {format_date(date(2026, 1, 5), 'medium', locale='fa')}"
    assert english.period("2026-01-05", "day") == "Jan 5, 2026" and english.period("2026", "year") == "2026"
    assert english.decimal(3, 2) == "3.00" and english.decimal(1234.5, 0) == "1,234"  # always that many places
    days = Column(name="avg_days", label="Avg days", type="days")
    assert english.decimal(3.25, 1) == "3.2" and english.axis_number(days, 2.5) == "2.5"
    rate = Column(name="rate", label="Rate", type="percent")
    assert english.axis_number(rate, 0.25) == "25%" and english.axis_number(rate, 0.05) == "5%"
    assert persian.grouping("organization.size_band") == "سازمان ردهٔ اندازه"
    assert persian.grouping("custom.shoe_size") == "سفارشی shoe size"  # a custom field's name, as the CLI shows it
