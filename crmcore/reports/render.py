"""A report result as an aligned text table, CSV, JSON or a self-contained HTML page."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmcore.cli.output import to_json
from crmcore.i18n import N_
from crmcore.reports.i18n import NONE_KEY

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore.reports.i18n import PageLanguage
    from crmcore.reports.model import Column, ReportResult

FORMATS = ("table", "csv", "json", "html")
NO_DATA = N_("No data for these parameters.")


def cell(column: Column, value: Any, *, key: bool = False) -> str:
    """*value* as people read it: 12.5%, 1,234.50, 3.2 days; an empty key as ``(none)``."""
    if value is None:
        return NONE_KEY if key else ""
    if column.type == "percent":
        return f"{value * 100:.1f}%"
    if column.type == "money":
        return f"{value:,.2f}"
    if column.type == "integer":
        return f"{value:,}"
    if column.type == "number":
        return f"{value:,.2f}"
    if column.type == "days":
        return f"{value:,.1f}"
    return str(value)


def text_table(result: ReportResult) -> str:
    """The aligned table ``crm report run`` prints by default."""
    headers = [c.label for c in result.columns]
    lines = [[cell(c, row[c.name], key=i == 0) for i, c in enumerate(result.columns)] for row in result.rows]
    if not lines:
        return f"{result.report.title}\n(no data for these parameters)\n"
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    numeric = [c.type not in ("text", "period") for c in result.columns]

    def fmt(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [fmt(headers), "  ".join("-" * w for w in widths)]
    out += [fmt(line) for line in lines]
    return "\n".join(out) + "\n"


def csv_text(result: ReportResult) -> str:
    """CSV with the column names as header; raw values (rates as fractions, money as decimals)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.name for c in result.columns])
    for row in result.rows:
        writer.writerow(["" if row[c.name] is None else _raw(row[c.name]) for c in result.columns])
    return buffer.getvalue()


def _raw(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def json_text(result: ReportResult) -> str:
    """The result as JSON: report, parameters, typed columns and rows (Decimals as strings)."""
    return to_json(result.as_dict()) + "\n"


def html_page(crm: CRM, results: Sequence[ReportResult], *, title: str | None = None) -> str:
    """One self-contained HTML page (inline CSS and SVG charts, no scripts, no network) for *results*."""
    sections = html_sections(results)
    plugins: dict[str, list[dict[str, Any]]] = {}
    for section in sections:
        plugins.setdefault(section["result"].report.plugin, []).append(section)
    template = crm.templates.get_template("reports/dashboard.html" if len(results) != 1 else "reports/report.html")
    return template.render(
        title=title or (results[0].report.title if len(results) == 1 else "Dashboard"),
        sections=sections,
        plugins=plugins,
        generated_at=results[0].generated_at if results else None,
        timezone=crm.settings.timezone,
    )


def html_sections(results: Sequence[ReportResult], language: PageLanguage | None = None) -> list[dict[str, Any]]:
    """What ``reports/_section.html`` renders for each result: texts, chart, headers, formatted rows.

    Without a *language* the texts are the reports' English ones and the figures
    are written as the text table writes them (the standalone HTML page); the
    console passes the page's :class:`~crmcore.reports.i18n.PageLanguage`.
    """
    from crmcore.reports.charts import chart_svg

    sections: list[dict[str, Any]] = []
    for result in results:
        svg = chart_svg(result, language)
        numeric = [c.type not in ("text", "period") for c in result.columns]
        if language is None:
            title, description, empty = result.report.title, result.report.description, NO_DATA
            labels = [c.label for c in result.columns]
            rows = [[cell(c, row[c.name], key=i == 0) for i, c in enumerate(result.columns)] for row in result.rows]
            parameters = {k: str(v) for k, v in result.parameters.items() if v not in (None, "")}
        else:
            title, description = language.title(result.report), language.description(result.report)
            empty = language.gettext(NO_DATA)
            labels = [language.label(c, result) for c in result.columns]
            rows = [[language.cell(c, row[c.name], result, key=i == 0) for i, c in enumerate(result.columns)]
                    for row in result.rows]  # fmt: skip
            parameters = dict(language.parameter(k, v, result) for k, v in result.parameters.items()
                              if v not in (None, ""))  # fmt: skip
        sections.append({
            "result": result,
            "title": title,
            "description": description,
            "empty": empty,
            "anchor": result.report.name.replace(".", "-"),
            "chart": _markup(svg) if svg else None,
            "headers": list(zip(labels, numeric, strict=True)),
            "rows": rows,
            "parameters": parameters,
        })  # fmt: skip
    return sections


def _markup(svg: str) -> Any:
    # The SVG is matplotlib's output: shapes and text drawn as paths, never copied from the data.
    from markupsafe import Markup

    return Markup(svg)


def render(crm: CRM, result: ReportResult, fmt: str) -> str:
    """*result* in *fmt* (one of :data:`FORMATS`)."""
    if fmt == "csv":
        return csv_text(result)
    if fmt == "json":
        return json_text(result)
    if fmt == "html":
        return html_page(crm, [result])
    return text_table(result)
