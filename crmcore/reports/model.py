"""What a report is: a named, documented query with typed parameters, columns and a chart.

A plugin returns :class:`Report` values from ``crm_register_reports``. The
report's ``build`` function receives a :class:`ReportQuery` (the validated
parameters plus SQL helpers for date ranges, periods in the CRM's time zone and
segments) and returns one SQLAlchemy ``Select``: the database does the
aggregation, Python only converts the typed values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Select, true

from crmcore.reports.sql import PERIODS, local_time, period_label

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from crmcore.context import HookContext
    from crmcore.crm import CRM

#: Column types and what a value of each is in Python.
COLUMN_TYPES = {
    "text": "str (None shows as (none))",
    "period": "str label: 2026-01-05 (day; week: its Monday), 2026-01, 2026-Q1, 2026",
    "integer": "int",
    "number": "float, 4 decimals",
    "money": "Decimal, 2 decimals, in the report's currency",
    "percent": "float fraction (0.125 is 12.5%); None when the denominator is 0",
    "days": "float days, 2 decimals",
}
CHART_KINDS = ("bar", "line", "funnel")
_CENT = Decimal("0.01")


@attrs.frozen(kw_only=True)
class Column:
    """One typed output column of a report."""

    name: str
    label: str
    #: One of :data:`COLUMN_TYPES`.
    type: str = "text"
    help: str = ""
    #: The value a period without any data shows (counts and sums: 0; averages and rates: None).
    empty: Any = None

    def __attrs_post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type!r}; types: {', '.join(COLUMN_TYPES)}")

    def convert(self, value: Any) -> Any:
        """Turn a database value into this column's Python type."""
        if value is None:
            return None
        if self.type == "integer":
            return int(value)
        if self.type == "money":
            return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
        if self.type == "percent":
            return round(float(value), 6)
        if self.type == "number":
            return round(float(value), 4)
        if self.type == "days":
            return round(float(value), 2)
        return str(value)


def count(name: str, label: str, help: str = "") -> Column:
    """An integer count column (0 for an empty period)."""
    return Column(name=name, label=label, type="integer", help=help, empty=0)


def money_sum(name: str, label: str, help: str = "") -> Column:
    """A money total column (0.00 for an empty period)."""
    return Column(name=name, label=label, type="money", help=help, empty=Decimal("0.00"))


@attrs.frozen(kw_only=True)
class Param:
    """A report-specific parameter, given as ``--param name=value``."""

    name: str
    help: str
    default: Any = None
    #: The allowed values, when the parameter is a choice.
    choices: tuple[str, ...] | None = None
    #: Converts the text given on the command line (raise ValueError to refuse it).
    convert: Callable[[str], Any] = str

    def parse(self, raw: Any) -> Any:
        """The converted value of *raw*; ValueError with a message when it is not acceptable."""
        if self.choices is not None and str(raw) not in self.choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
        return self.convert(raw) if isinstance(raw, str) else raw


@attrs.frozen(kw_only=True)
class Chart:
    """How the HTML output draws a report.

    ``bar`` draws the *y* columns per row (a line instead when the report is
    grouped by a period), ``line`` always a line, ``funnel`` centred bars in row
    order (pipeline stages).
    """

    kind: str = "bar"
    #: The columns drawn; columns of one type (all money, all percent, …) share an axis.
    y: tuple[str, ...] = ()
    #: At most this many rows are drawn (the table always shows all of them).
    limit: int = 20

    def __attrs_post_init__(self) -> None:
        if self.kind not in CHART_KINDS:
            raise ValueError(f"unknown chart kind {self.kind!r}; kinds: {', '.join(CHART_KINDS)}")


Groupings = Sequence[str] | Callable[["ReportQuery"], Sequence[str]]


@attrs.frozen(kw_only=True)
class Report:
    """A named, documented query: ``crm report run NAME``.

    :param name: Dotted, unique: ``<area>.<what>`` (``ticketing.sla``).
    :param title: One line for listings and page headings.
    :param description: What the figures mean and how they are computed.
    :param build: Returns the ``Select`` for a :class:`ReportQuery`; its labelled
        columns are the grouping key (labelled ``key``) and every :attr:`columns` name.
    :param columns: The typed value columns, in display order.
    :param groupings: The values ``--by`` accepts (or a function of the query
        returning them, for groupings that depend on data such as custom fields).
    :param default_by: The grouping used when ``--by`` is not given.
    :param dates: What ``--from``/``--to`` select (shown by ``crm report show``).
    :param main: Shown on the dashboard of its plugin.
    :param segments: Whether ``--segment`` can restrict it to a segment's contacts.
    :param terms: Groupings whose keys are words of the product (a lifecycle stage, a ticket's
        status) rather than data: the console's dashboard shows them translated.
    """

    name: str
    title: str
    description: str
    build: Callable[[ReportQuery], Select[Any]] = attrs.field(repr=False)
    columns: tuple[Column, ...]
    groupings: Groupings = ()
    default_by: str
    params: tuple[Param, ...] = ()
    chart: Chart | None = None
    dates: str = ""
    main: bool = False
    segments: bool = True
    terms: tuple[str, ...] = ()
    #: The plugin that registered it (filled in by the registry).
    plugin: str = ""

    def param(self, name: str) -> Param | None:
        """The declared parameter *name*, if any."""
        return next((p for p in self.params if p.name == name), None)


@attrs.define(kw_only=True)
class ReportQuery:
    """A report's validated parameters and the SQL helpers its ``build`` uses.

    Dates are local dates in the CRM's time zone (``crm.settings.timezone``);
    ``end_date`` is inclusive. ``start``/``end`` are the same range as UTC
    instants (``end`` exclusive), ready to compare with timestamp columns.
    """

    report: Report
    ctx: HookContext
    by: str
    start_date: date | None = None
    end_date: date | None = None
    segment: str | None = None
    params: dict[str, Any] = attrs.field(factory=dict)
    #: The segment's contact ids as a subquery (set by the registry from ``crm_segment_query``).
    segment_select: Select[Any] | None = None

    @property
    def crm(self) -> CRM:
        """The CRM the report runs on."""
        return self.ctx.crm

    @property
    def session(self) -> Session:
        """The session of the read-only unit of work."""
        return self.ctx.session

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql`` or ``mariadb`` (MySQL counts as ``mariadb``)."""
        bind = self.session.get_bind()
        name = bind.dialect.name
        return "mariadb" if name in ("mysql", "mariadb") else name

    @property
    def zone_name(self) -> str:
        """The CRM's time zone, in which days and periods are cut."""
        return self.crm.settings.timezone

    @property
    def start(self) -> datetime | None:
        """The start of the range as a UTC instant (local midnight of ``start_date``)."""
        return self._instant(self.start_date)

    @property
    def end(self) -> datetime | None:
        """The end of the range (exclusive) as a UTC instant: local midnight after ``end_date``."""
        return self._instant(self.end_date + timedelta(days=1)) if self.end_date else None

    def _instant(self, day: date | None) -> datetime | None:
        if day is None:
            return None
        return datetime.combine(day, time(0), tzinfo=self.crm.settings.zone).astimezone(UTC)

    @property
    def is_period(self) -> bool:
        """True when grouped by a period (``day`` … ``year``)."""
        return self.by in PERIODS

    @property
    def today(self) -> date:
        """Today in the CRM's zone, by the CRM's clock."""
        return self.ctx.now.astimezone(self.crm.settings.zone).date()

    @property
    def as_of(self) -> date:
        """The date "as of" which ages are measured: the range's end, else today."""
        return self.end_date or self.today

    def in_range(self, column: Any) -> Any:
        """A condition: the timestamp *column* falls in the range (true when unbounded)."""
        condition: Any = true()
        if self.start is not None:
            condition = condition & (column >= self.start)
        if self.end is not None:
            condition = condition & (column < self.end)
        return condition

    def in_dates(self, column: Any) -> Any:
        """A condition: the date *column* (already local, such as ``ad_spend.day``) is in the range."""
        condition: Any = true()
        if self.start_date is not None:
            condition = condition & (column >= self.start_date)
        if self.end_date is not None:
            condition = condition & (column <= self.end_date)
        return condition

    def local(self, column: Any) -> Any:
        """The UTC timestamp *column* as wall-clock time in the CRM's zone."""
        bounds = (self.start, self.end) if self.start is not None and self.end is not None else None
        return local_time(column, self.dialect, self.zone_name, bounds)

    def period(self, column: Any, unit: str | None = None) -> Any:
        """The label of the period (``unit``, default ``by``) holding the UTC timestamp *column*."""
        return period_label(self.local(column), unit or self.by, self.dialect)

    def date_period(self, column: Any, unit: str | None = None) -> Any:
        """The label of the period holding the date *column* (no zone conversion)."""
        return period_label(column, unit or self.by, self.dialect)

    def in_segment(self, contact_id: Any) -> Any:
        """A condition: *contact_id* belongs to the ``--segment`` (true without one)."""
        if self.segment_select is None:
            return true()
        return contact_id.in_(self.segment_select)

    def param(self, name: str) -> Any:
        """A report parameter's value (its default when not given)."""
        return self.params[name]


@attrs.frozen(kw_only=True)
class ReportResult:
    """A report's typed output: the key column first, then the value columns, and the rows."""

    report: Report
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    #: What it was run with: from, to, by, segment, timezone and the report's parameters.
    parameters: dict[str, Any]
    generated_at: datetime

    @property
    def key(self) -> Column:
        """The grouping column (named after ``--by``)."""
        return self.columns[0]

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (Decimals and dates are encoded by the caller)."""
        return {
            "report": self.report.name,
            "title": self.report.title,
            "plugin": self.report.plugin,
            "parameters": self.parameters,
            "generated_at": self.generated_at,
            "columns": [{"name": c.name, "label": c.label, "type": c.type} for c in self.columns],
            "rows": self.rows,
        }
