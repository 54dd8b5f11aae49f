"""Portable SQL for reports: periods in the CRM's time zone, safe ratios, ages and durations.

SQLite, PostgreSQL and MariaDB spell dates differently, and only PostgreSQL
converts time zones by itself (MariaDB only when its zone tables are loaded,
which they usually are not). Elsewhere a UTC timestamp is moved to local time
by adding its zone's UTC offset, chosen by a small binary tree of ``CASE``
expressions over the zone's transitions (a handful of comparisons per row,
exact across daylight-saving changes).
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Integer, Numeric, String, case, cast, func, literal, literal_column, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from crmcore.db import UTCDateTime
from crmcore.i18n import N_

#: Groupings by time, from the finest to the coarsest.
PERIODS = (N_("day"), N_("week"), N_("month"), N_("quarter"), N_("year"))

#: The span searched for a zone's transitions when a report has no date bounds.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


# -- ratios ---------------------------------------------------------------------


class ratio(FunctionElement[float]):
    """``numerator / denominator`` as a float; NULL (never an error) when the denominator is 0."""

    type = Float()
    inherit_cache = True
    name = "ratio"


@compiles(ratio)
def _ratio_default(element: ratio, compiler: Any, **kw: Any) -> str:
    num, den = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(CAST({num} AS REAL) / NULLIF({den}, 0))"


@compiles(ratio, "postgresql")
def _ratio_pg(element: ratio, compiler: Any, **kw: Any) -> str:
    num, den = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(CAST({num} AS DOUBLE PRECISION) / NULLIF(CAST({den} AS DOUBLE PRECISION), 0))"


@compiles(ratio, "mysql")
@compiles(ratio, "mariadb")
def _ratio_mysql(element: ratio, compiler: Any, **kw: Any) -> str:
    # MariaDB divides decimals to 4 places only; "+ 0e0" makes it a DOUBLE division.
    num, den = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(({num} + 0e0) / NULLIF({den}, 0))"


#: The type of a quotient of exact decimals: enough places that the report's own rounding is the only one.
QUOTIENT = Numeric(38, 10, asdecimal=True)


def safe_div(numerator: Any, denominator: Any) -> ColumnElement[Any]:
    """``numerator / denominator``, exact decimals for a decimal numerator (money stays exact); NULL for 0.

    SQLite answers a float, which SQLAlchemy turns into a decimal of the
    numerator's scale: for money (4 places) 1,043.17497 became 1,043.1750 and
    then, rounded to cents by the report, 1,043.18 instead of 1,043.17.
    """
    quotient = numerator / func.nullif(denominator, 0)
    if isinstance(quotient.type, Numeric) and quotient.type.asdecimal:
        return type_coerce(quotient, QUOTIENT)
    return quotient  # type: ignore[no-any-return]


# -- index choice ------------------------------------------------------------------


class unindexed(FunctionElement[Any]):
    """*column* unchanged, but SQLite will not pick an index to search by a condition on it.

    SQLite's unary ``+`` (a no-op, no affinity: the values compared are the
    stored ones) keeps a range on this column from steering the plan, so it can
    walk an index in an order that serves the rest of the query better; the
    other databases plan by their statistics and get the column as it is.
    """

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(next(iter(element.clauses)), **kw)  # type: ignore[no-any-return]


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(next(iter(element.clauses)), **kw)}"


# -- durations and ages --------------------------------------------------------


class days_between(FunctionElement[float]):
    """Days (fractional) from ``earlier`` to ``later``: ``days_between(later, earlier)``."""

    type = Float()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(julianday({later}) - julianday({earlier}))"


@compiles(days_between, "postgresql")
def _days_pg(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"


@compiles(days_between, "mysql")
@compiles(days_between, "mariadb")
def _days_mysql(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(TIMESTAMPDIFF(MICROSECOND, {earlier}, {later}) / 86400000000e0)"


class age_years(FunctionElement[int]):
    """Completed years from a birth date to a reference date: ``age_years(birth_date, on)``."""

    type = Integer()
    inherit_cache = True
    name = "age_years"


@compiles(age_years)
def _age_sqlite(element: age_years, compiler: Any, **kw: Any) -> str:
    born, on = (compiler.process(arg, **kw) for arg in element.clauses)
    return (
        f"(CAST(strftime('%Y', {on}) AS INTEGER) - CAST(strftime('%Y', {born}) AS INTEGER)"
        f" - (strftime('%m-%d', {on}) < strftime('%m-%d', {born})))"
    )


@compiles(age_years, "postgresql")
def _age_pg(element: age_years, compiler: Any, **kw: Any) -> str:
    born, on = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(EXTRACT(YEAR FROM age(CAST({on} AS DATE), {born})) AS INTEGER)"


@compiles(age_years, "mysql")
@compiles(age_years, "mariadb")
def _age_mysql(element: age_years, compiler: Any, **kw: Any) -> str:
    born, on = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"TIMESTAMPDIFF(YEAR, {born}, {on})"


class floor_div(FunctionElement[int]):
    """``floor(value / step)`` for non-negative values, as an integer."""

    type = Integer()
    inherit_cache = True
    name = "floor_div"


@compiles(floor_div)
def _floor_sqlite(element: floor_div, compiler: Any, **kw: Any) -> str:
    value, step = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(({value}) / ({step}) AS INTEGER)"


@compiles(floor_div, "postgresql")
def _floor_pg(element: floor_div, compiler: Any, **kw: Any) -> str:
    value, step = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(FLOOR(({value}) / ({step})) AS INTEGER)"


@compiles(floor_div, "mysql")
@compiles(floor_div, "mariadb")
def _floor_mysql(element: floor_div, compiler: Any, **kw: Any) -> str:
    value, step = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(FLOOR(({value}) / ({step})) AS SIGNED)"


# -- time zones and periods ----------------------------------------------------


@lru_cache(maxsize=64)
def zone_transitions(zone_name: str, start: datetime, end: datetime) -> tuple[tuple[datetime, ...], tuple[int, ...]]:
    """The UTC instants where *zone_name*'s offset changes between *start* and *end*.

    Returns ``(instants, offsets)`` with ``len(offsets) == len(instants) + 1``:
    ``offsets[i]`` (seconds) holds before ``instants[i]``, the last one after the
    last instant. Found by stepping a day at a time and bisecting each change to
    the second (zones change offset at most a few times a year).
    """
    zone = ZoneInfo(zone_name)

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    instants: list[datetime] = []
    offsets = [offset(start)]
    step = timedelta(days=1)
    at = start
    while at < end:
        following = min(at + step, end)
        if offset(following) != offsets[-1]:
            low, high = at, following  # offset(low) is the old one, offset(high) the new one
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    break
                if offset(middle) == offsets[-1]:
                    low = middle
                else:
                    high = middle
            instants.append(high)
            offsets.append(offset(high))
        at = following
    return tuple(instants), tuple(offsets)


def _offset_tree(column: Any, instants: tuple[datetime, ...], offsets: tuple[int, ...], render: Any) -> Any:
    """A balanced CASE tree picking the offset (rendered by *render*) in force at *column*."""
    if not instants:
        return render(offsets[0])
    middle = len(instants) // 2
    pivot = literal(instants[middle], UTCDateTime())
    return case(
        (column < pivot, _offset_tree(column, instants[:middle], offsets[: middle + 1], render)),
        else_=_offset_tree(column, instants[middle + 1 :], offsets[middle + 1 :], render),
    )


def local_time(column: Any, dialect: str, zone_name: str, bounds: tuple[datetime, datetime] | None = None) -> Any:
    """*column* (a UTC timestamp) as wall-clock time in *zone_name*, in SQL.

    *bounds* (UTC) narrows the transitions considered to the report's range.
    """
    if dialect == "postgresql":
        # The zone name comes from validated settings (ZoneInfo accepted it).
        return func.timezone(literal_column(_quote(zone_name)), column)
    start, end = bounds or (_EARLIEST, _LATEST)
    instants, offsets = zone_transitions(zone_name, start - timedelta(days=2), end + timedelta(days=2))
    if not instants and offsets[0] == 0:
        return column  # UTC (or a zone at UTC throughout the range): nothing to add
    if dialect == "sqlite":
        modifier = _offset_tree(column, instants, offsets, lambda s: literal_column(f"'{s:+d} seconds'"))
        return func.datetime(column, modifier)
    seconds = _offset_tree(column, instants, offsets, lambda s: literal_column(str(s)))
    return func.timestampadd(literal_column("SECOND"), seconds, column)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def period_label(value: Any, unit: str, dialect: str) -> Any:
    """The label of the *unit* period (see :data:`PERIODS`) holding *value*, a local time or date.

    Labels sort in time order: ``2026-01-05`` (day; week: its Monday),
    ``2026-01`` (month), ``2026-Q1`` (quarter), ``2026`` (year). Format
    strings are rendered as SQL constants so that a ``GROUP BY`` repeats the
    select's expression exactly (PostgreSQL compares them textually).
    """
    if unit not in PERIODS:
        raise ValueError(f"unknown period {unit!r}")
    if dialect == "sqlite":
        if unit == "day":
            return func.date(value)
        if unit == "week":
            return func.date(value, literal_column("'weekday 0'"), literal_column("'-6 days'"))
        if unit == "month":
            return func.strftime(literal_column("'%Y-%m'"), value)
        if unit == "year":
            return func.strftime(literal_column("'%Y'"), value)
        month = cast(func.strftime(literal_column("'%m'"), value), Integer)
        quarter = cast(
            (month + literal_column("2")).self_group().op("/")(literal_column("3")), String
        )  # integer division
        return func.strftime(literal_column("'%Y'"), value).op("||")(literal_column("'-Q'")).op("||")(quarter)
    if dialect == "postgresql":
        formats = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "quarter": 'YYYY-"Q"Q', "year": "YYYY"}
        if unit == "week":
            return func.to_char(func.date_trunc(literal_column("'week'"), value), literal_column("'YYYY-MM-DD'"))
        return func.to_char(value, literal_column(_quote(formats[unit])))
    formats = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
    if unit == "week":
        return func.date_format(func.subdate(func.date(value), func.weekday(value)), literal_column("'%Y-%m-%d'"))
    if unit == "quarter":
        return func.concat(func.year(value), literal_column("'-Q'"), func.quarter(value))
    return func.date_format(value, literal_column(f"'{formats[unit]}'"))


def period_of(day: date, unit: str) -> str:
    """The label :func:`period_label` gives a local *day* (the same labels, in Python)."""
    if unit == "day":
        return day.isoformat()
    if unit == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if unit == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if unit == "quarter":
        return f"{day.year:04d}-Q{(day.month + 2) // 3}"
    if unit == "year":
        return f"{day.year:04d}"
    raise ValueError(f"unknown period {unit!r}")


def period_labels(first: date, last: date, unit: str) -> list[str]:
    """Every period label from the one holding *first* to the one holding *last*, in order."""
    labels: list[str] = []
    day = first
    while day <= last:
        label = period_of(day, unit)
        if not labels or labels[-1] != label:
            labels.append(label)
        day = _next_period_start(day, unit)
    return labels


def _next_period_start(day: date, unit: str) -> date:
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "week":
        return day + timedelta(days=7 - day.weekday())
    if unit == "month":
        return date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    if unit == "quarter":
        first_month = (day.month - 1) // 3 * 3 + 1
        return date(day.year + (first_month == 10), (first_month + 2) % 12 + 1, 1)
    return date(day.year + 1, 1, 1)


def label_start(label: str, unit: str) -> date:
    """The first day of the period a label names (inverse of :func:`period_of`)."""
    if unit in ("day", "week"):
        return date.fromisoformat(label)
    if unit == "month":
        year, month = label.split("-")
        return date(int(year), int(month), 1)
    if unit == "quarter":
        year, quarter = label.split("-Q")
        return date(int(year), (int(quarter) - 1) * 3 + 1, 1)
    return date(int(label), 1, 1)


def offset_at(zone_name: str, at: datetime) -> int:
    """The UTC offset (seconds) of *zone_name* at the UTC instant *at* (for tests and checks)."""
    instants, offsets = zone_transitions(zone_name, _EARLIEST, _LATEST)
    return offsets[bisect.bisect_right(instants, at)]
