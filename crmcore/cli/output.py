"""Printing results as an aligned table, JSON (stable, for scripts) or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import click

FORMATS = ("table", "json", "csv")
F = TypeVar("F", bound=Callable[..., Any])


def format_option(func: F) -> F:
    """The ``--format table|json|csv`` option every listing and ``show`` takes."""
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        help="Output format; json is stable for scripts.",
    )(func)  # fmt: skip


def json_default(value: Any) -> Any:
    """Encode Decimals as strings (exact), datetimes and dates as ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_json(value: Any) -> str:
    """The JSON text crmcore prints: sorted keys, two-space indent, UTF-8."""
    return json.dumps(value, default=json_default, indent=2, sort_keys=True, ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=json_default, ensure_ascii=False, sort_keys=True)
    return str(value)


def emit(rows: Iterable[Mapping[str, Any]], fmt: str, columns: Sequence[str] | None = None) -> None:
    """Print *rows* (dicts) in *fmt*; *columns* picks and orders the table's columns."""
    rows = [dict(row) for row in rows]
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    if fmt == "json":
        click.echo(to_json([{c: row.get(c) for c in columns} for row in rows]))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        click.echo(buffer.getvalue(), nl=False)
        return
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [min(max(len(c), *(len(r[i]) for r in cells)), 60) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for line in cells:
        click.echo("  ".join(_clip(v, w).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def emit_record(record: Mapping[str, Any], fmt: str) -> None:
    """Print one record: ``key  value`` lines, a JSON object, or a one-row CSV."""
    if fmt == "json":
        click.echo(to_json(dict(record)))
    elif fmt == "csv":
        emit([record], "csv")
    else:
        width = max((len(k) for k in record), default=0)
        for key, value in record.items():
            click.echo(f"{key.ljust(width)}  {_cell(value)}".rstrip())


def _clip(value: str, width: int) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= width else value[: width - 1] + "…"
