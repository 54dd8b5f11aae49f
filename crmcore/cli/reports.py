"""``crm report``: list, explain, run and export reports; the dashboard page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option
from crmcore.errors import ValidationError

REPORT_FORMATS = ("table", "csv", "json", "html")


@click.group()
def report() -> None:
    """Marketing, sales and service reports, as tables, CSV, JSON or HTML with charts."""


@report.command("list")
@format_option
def report_list(fmt: str) -> None:
    """List every report of the enabled plugins.

    \b
    Example:
      crm report list --format json
    """
    reports = get_crm().reports.list()
    emit([{"name": r.name, "plugin": r.plugin, "main": r.main, "title": r.title} for r in reports], fmt,
         ["name", "plugin", "main", "title"])  # fmt: skip


@report.command("show")
@click.argument("name")
@format_option
def report_show(name: str, fmt: str) -> None:
    """Explain a report: what it computes, its groupings, parameters and columns.

    \b
    Example:
      crm report show marketing.roi
    """
    crm = get_crm()
    found = crm.reports.get(name)
    with crm.transaction() as ctx:
        from crmcore.reports.model import ReportQuery

        query = ReportQuery(report=found, ctx=ctx, by=found.default_by)
        groupings = found.groupings(query) if callable(found.groupings) else found.groupings
    emit_record({
        "name": found.name, "plugin": found.plugin, "title": found.title, "description": found.description,
        "groupings": ", ".join(groupings), "default_grouping": found.default_by, "dates": found.dates,
        "parameters": "; ".join(
            f"{p.name}: {p.help}" + (f" ({'|'.join(p.choices)})" if p.choices else "")
            + (f" [default {p.default}]" if p.default is not None else "")
            for p in found.params
        ) or "none",
        "columns": ", ".join(f"{c.name} ({c.type})" for c in found.columns),
        "main": found.main,
    }, fmt)  # fmt: skip


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValidationError({"param": f"{pair!r} is not NAME=VALUE"})
        params[name.strip()] = value.strip()
    return params


def _write(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


def _range_options(func: Any) -> Any:
    func = click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day, included (CRM time zone).")(func)
    return click.option("--from", "start", metavar="YYYY-MM-DD", help="First day (CRM time zone).")(func)


@report.command("run")
@click.argument("name")
@_range_options
@click.option("--by", metavar="GROUPING", help="Group rows by this (see `crm report show NAME`).")
@click.option("--segment", metavar="NAME", help="Only the contacts of this segment.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A report parameter (repeatable).")
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="table", show_default=True,
              help="table for reading, csv/json for scripts, html for a page with a chart.")  # fmt: skip
@click.option("--output", type=click.Path(dir_okay=False), metavar="FILE", help="Write to FILE instead of stdout.")
def report_run(
    name: str, start: str | None, end: str | None, by: str | None, segment: str | None, params: tuple[str, ...],
    fmt: str, output: str | None,
) -> None:  # fmt: skip
    """Run a report over a date range, grouped and filtered as asked.

    \b
    Examples:
      crm report run marketing.ads --from 2026-01-01 --to 2026-03-31 --by campaign
      crm report run sales.conversion --by month --param source=google --format csv
      crm report run marketing.roi --format html --output roi.html
    """
    from crmcore.reports.render import render

    crm = get_crm()
    result = crm.reports.run(name, start=start, end=end, by=by, segment=segment, params=_params(params))
    _write(render(crm, result, fmt), output)


@report.command("dashboard")
@_range_options
@click.option("--output", type=click.Path(dir_okay=False), metavar="FILE.html", required=True,
              help="The HTML file to write.")  # fmt: skip
@click.option("--title", default="Dashboard", show_default=True, help="Page heading.")
def report_dashboard(start: str | None, end: str | None, output: str, title: str) -> None:
    """Write one HTML page with the main reports of every enabled plugin.

    \b
    Example:
      crm report dashboard --from 2026-01-01 --to 2026-06-30 --output dashboard.html
    """
    from crmcore.reports.render import html_page

    crm = get_crm()
    _write(html_page(crm, crm.reports.dashboard(start=start, end=end), title=title), output)


@report.command("rollup")
@format_option
def report_rollup(fmt: str) -> None:
    """Rebuild the daily rollups that channels, products, ROI, ads and affiliates read, from the raw rows.

    Writes through the services keep them exact (and the hourly job rolls up
    each settled day); rebuild after changing the CRM's time zone (until then
    those reports read the raw rows) or after loading touchpoints or purchases
    into the database by hand.

    \b
    Example:
      crm report rollup
    """
    crm = get_crm()
    rows = crm.reports.rebuild_rollup()
    zone = crm.settings.timezone
    if fmt == "table":
        click.echo(f"rebuilt the report rollups: {rows} rows ({zone})")
    else:
        emit_record({"rows": rows, "zone": zone}, fmt)


COMMANDS = [report]
