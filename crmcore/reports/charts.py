"""Charts for the HTML output: matplotlib figures rendered to inline SVG.

matplotlib's object API (``Figure``, never ``pyplot``) keeps no global state,
so two CRMs can render at once. Text is drawn as paths, so the SVG needs no
fonts and no network, and no label can ever become markup. matplotlib 3.11
lays text out with libraqm, so Persian and Arabic labels are shaped and
written right to left.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crmcore.errors import ConfigError

if TYPE_CHECKING:
    from crmcore.reports.i18n import PageLanguage
    from crmcore.reports.model import Column, ReportResult

PALETTE = ("#2f6db5", "#e08a2c", "#3a9a5b", "#c4453c", "#7d5ba6", "#8c6d4f")
LABEL_LENGTH = 28


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("HTML reports draw their charts with matplotlib: pip install 'crmcore[reports]'") from None
    matplotlib.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "crmcore", "font.size": 9})
    return matplotlib


def chart_svg(result: ReportResult, language: PageLanguage | None = None) -> str | None:
    """The report's chart as an ``<svg>`` element, or None when it has no chart or no figures.

    With a *language*, its labels, legend and numbers are in the page's language.
    """
    chart = result.report.chart
    if chart is None or not result.rows:
        return None
    columns = {c.name: c for c in result.columns}
    series = [columns[name] for name in chart.y if name in columns]
    series = [c for c in series if c.type == series[0].type] if series else []
    rows = [row for row in result.rows if any(row[c.name] is not None for c in series)]
    if not series or not rows or all(not row[c.name] for row in rows for c in series):
        return None
    _matplotlib()
    from matplotlib.figure import Figure

    kind = "line" if chart.kind == "line" or (chart.kind == "bar" and result.key.type == "period") else chart.kind
    if kind != "line":
        rows = rows[: chart.limit]
    if language is None:
        labels = [_label("(none)" if row[result.key.name] is None else str(row[result.key.name])) for row in rows]
        names = [c.label for c in series]
        number = _number
    else:
        labels = [_label(language.cell(result.key, row[result.key.name], result, key=True)) for row in rows]
        names = [language.gettext(c.label) for c in series]
        number = language.axis_number
    values = [[float(row[c.name] or 0) for row in rows] for c in series]
    height = 3.2 if kind == "line" else max(2.2, 0.32 * len(rows) * (1 + 0.35 * (len(series) - 1)) + 1.0)
    figure = Figure(figsize=(8.0, height), layout="constrained")
    axes = figure.add_subplot()
    if kind == "line":
        _line(axes, labels, values, names)
    elif kind == "funnel":
        _funnel(axes, labels, values, names, lambda value: number(series[0], value))
    else:
        _bars(axes, labels, values, names)
    _format_axis(axes.yaxis if kind == "line" else axes.xaxis, series[0], language)
    # A right-to-left page reads bars from the right: labels on the right, bars growing leftwards.
    mirrored = language is not None and language.right_to_left and kind != "line"
    if mirrored:
        axes.invert_xaxis()
        axes.yaxis.tick_right()
    for side in ("top", "left" if mirrored else "right"):
        axes.spines[side].set_visible(False)
    if len(series) > 1:
        handles, legend_names = axes.get_legend_handles_labels()
        order = slice(None, None, -1 if mirrored else 1)  # the first series first in reading order
        figure.legend(handles[order], legend_names[order], frameon=False, loc="outside lower center",
                      ncols=len(series), markerfirst=not mirrored)  # fmt: skip
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _inline(buffer.getvalue())


def _label(text: str) -> str:
    return text if len(text) <= LABEL_LENGTH else text[: LABEL_LENGTH - 1] + "…"


def _bars(axes: Any, labels: list[str], values: list[list[float]], names: list[str]) -> None:
    count = len(names)
    width = 0.8 / count
    for index, (name, numbers) in enumerate(zip(names, values, strict=True)):
        positions = [i - 0.4 + width * (index + 0.5) for i in range(len(labels))]
        axes.barh(positions, numbers, height=width * 0.92, color=PALETTE[index % len(PALETTE)], label=name)
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()  # the first row (the best ranked) on top
    axes.grid(axis="x", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)


def _line(axes: Any, labels: list[str], values: list[list[float]], names: list[str]) -> None:
    positions = list(range(len(labels)))
    for index, (name, numbers) in enumerate(zip(names, values, strict=True)):
        axes.plot(positions, numbers, marker="o" if len(labels) <= 40 else None, markersize=3.5,
                  color=PALETTE[index % len(PALETTE)], label=name)  # fmt: skip
    step = max(1, len(labels) // 12)
    axes.set_xticks(positions[::step], labels[::step], rotation=45 if len(labels) > 6 else 0, ha="right")
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_ylim(bottom=min(0.0, *[min(v) for v in values]))


def _funnel(axes: Any, labels: list[str], values: list[list[float]], names: list[str],
            number: Callable[[float], str]) -> None:  # fmt: skip
    widest = max(max(v) for v in values) or 1.0
    for index, numbers in enumerate(values):
        shrink = 1.0 - 0.3 * index
        lefts = [-(n / widest) * shrink / 2 for n in numbers]
        axes.barh(range(len(labels)), [(n / widest) * shrink for n in numbers], left=lefts,
                  height=0.8 - 0.25 * index, color=PALETTE[index % len(PALETTE)],
                  label=names[index])  # fmt: skip
    for position, value in enumerate(values[0]):
        axes.annotate(number(value), (0.5, position), xycoords=("axes fraction", "data"),
                      ha="center", va="center", fontsize=8, color="white", fontweight="bold")  # fmt: skip
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()
    axes.set_xlim(-0.55, 0.55)
    axes.set_xticks([])
    axes.spines["bottom"].set_visible(False)


def _number(column: Column, value: float) -> str:
    if column.type == "percent":
        return f"{value * 100:.1f}%"
    if column.type in ("money", "integer"):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _format_axis(axis: Any, column: Column, language: PageLanguage | None) -> None:
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    if language is not None:
        axis.set_major_formatter(FuncFormatter(lambda value, _pos: language.axis_number(column, value)))
    elif column.type == "percent":
        axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    elif column.type in ("money", "integer", "number", "days"):
        axis.set_major_formatter(
            FuncFormatter(lambda value, _pos: f"{value:,.0f}" if abs(value) >= 10 else f"{value:g}")
        )


def _inline(svg: str) -> str:
    """Drop the XML prolog and make the drawing scale with the page."""
    svg = svg[svg.index("<svg") :]
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', svg, count=1)
