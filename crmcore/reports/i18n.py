"""Reports in a page's language: their texts translated, their figures written the locale's way.

A report's title, description, column labels, grouping and parameter names
are English, marked with :func:`crmcore.i18n.N_` where they are written (so
``pybabel extract`` lists them) and stay English for the Python API, the CLI,
CSV, JSON and the standalone HTML page. The console's report dashboard shows
them through a :class:`PageLanguage`: translated with the console's catalogs
(the core's and each plugin's ``console.po``) and with numbers, money, dates and
periods formatted by Babel in the CRM's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from crmcore.i18n import N_
from crmcore.reports.sql import PERIODS, label_start

if TYPE_CHECKING:
    from crmcore.console.i18n import Formatter
    from crmcore.reports.model import Column, Report, ReportResult

#: The key of a row without a value (an unassigned rep, a contact without a source).
NONE_KEY = N_("(none)")
#: The names of what every report is run with (the report's own parameters are marked where declared).
PARAMETER_NAMES = (N_("from"), N_("to"), N_("by"), N_("segment"), N_("timezone"))
#: The parts of dotted groupings (``organization.industry``, ``custom.NAME``).
GROUPING_PARTS = (N_("organization"), N_("custom"))
#: A week is shown by its Monday.
WEEK_OF = N_("week of %(date)s")
#: How each period of a period grouping is written (Babel date skeletons).
_PERIOD_SKELETONS = {"month": "yMMMM", "quarter": "yQQQ", "year": "y"}
#: Decimal places per column type, as the text table shows them.
_PLACES = {"number": 2, "days": 1}


@attrs.frozen(kw_only=True)
class PageLanguage:
    """How one page writes reports: its gettext, its formatter and the CRM's currency.

    :param gettext: The page's translations (:func:`crmcore.console.app.translator`).
    :param formatter: The page's locale and time zone (:func:`crmcore.console.app.formatter`).
    :param currency: Money of a report without a ``currency`` parameter is in this one.
    """

    gettext: Callable[[str], str]
    formatter: Formatter
    currency: str

    @property
    def right_to_left(self) -> bool:
        """Whether the page's language is written right to left (its charts are mirrored)."""
        from crmcore.console.i18n import text_direction

        return text_direction(self.formatter.lang) == "rtl"

    def title(self, report: Report) -> str:
        """The report's title."""
        return self.gettext(report.title)

    def description(self, report: Report) -> str:
        """What the report's figures mean."""
        return self.gettext(report.description)

    def label(self, column: Column, result: ReportResult) -> str:
        """A column's heading; the key column is named after its grouping."""
        if column is result.key:
            return self.grouping(column.name)
        return self.gettext(column.label)

    def grouping(self, name: str) -> str:
        """A grouping's name (``source``, ``organization.industry``); parts without a translation as the CLI
        shows them."""
        return " ".join(self._word(part) for part in name.split("."))

    def _word(self, name: str) -> str:
        translated = self.gettext(name)
        return translated if translated != name else name.replace("_", " ")

    def cell(self, column: Column, value: Any, result: ReportResult, *, key: bool = False) -> str:
        """*value* as the page's locale writes it: money with its currency, periods as dates."""
        from crmcore.console.i18n import term

        fmt = self.formatter
        if value is None:
            return self.gettext(NONE_KEY) if key else ""
        if column.type == "percent":
            return fmt.percent(value)
        if column.type == "money":
            return fmt.money(value, self.currency_of(result))
        if column.type in _PLACES:
            return self.decimal(value, _PLACES[column.type])
        if column.type == "integer":
            return fmt.number(value)
        if column.type == "period":
            return self.period(str(value), result.key.name)
        if key and result.key.name in result.report.terms:  # words of the product: a stage, a status
            return term(str(value), self.gettext)
        return str(value)  # data, as stored

    def decimal(self, value: float | Decimal, places: int) -> str:
        """*value* with exactly *places* decimals and the locale's separators."""
        from babel.numbers import format_decimal

        pattern = "#,##0." + "0" * places if places else "#,##0"
        return format_decimal(value, format=pattern, locale=self.formatter.locale)

    def period(self, label: str, unit: str) -> str:
        """A period label (``2026-01``, ``2026-Q1``, a week's Monday) as the locale writes a period."""
        from babel.dates import format_skeleton

        if unit not in PERIODS:
            return label
        try:
            first = label_start(label, unit)
        except ValueError:
            return label
        if unit == "day":
            return self.formatter.date(first)
        if unit == "week":
            return self.gettext(WEEK_OF) % {"date": self.formatter.date(first)}
        return format_skeleton(_PERIOD_SKELETONS[unit], first, locale=self.formatter.locale)

    def parameter(self, name: str, value: Any, result: ReportResult) -> tuple[str, str]:
        """A parameter's name and value: dates formatted, a grouping or column by its translated name."""
        from crmcore.console.i18n import term

        shown: str
        if isinstance(value, dt.date):
            shown = self.formatter.date(value)
        elif isinstance(value, bool):
            shown = self.gettext("yes" if value else "no")
        elif isinstance(value, int | float | Decimal):
            shown = self.formatter.number(value)
        elif name == "by":
            shown = self.grouping(str(value))
        else:
            column = next((c for c in result.columns if c.name == value), None)
            shown = self.gettext(column.label) if column is not None else term(str(value), self.gettext)
        return self.gettext(name), shown

    def currency_of(self, result: ReportResult) -> str:
        """The currency of *result*'s money: its ``currency`` parameter, else the CRM's."""
        return str(result.parameters.get("currency") or self.currency)

    def axis_number(self, column: Column, value: float) -> str:
        """A chart's tick or annotation: whole numbers from 10 on, percentages with the locale's sign."""
        from babel.numbers import format_decimal, format_percent

        if column.type == "percent":
            return format_percent(value, format="#,##0%" if abs(value) >= 0.1 else "#,##0.#%",
                                  locale=self.formatter.locale)  # fmt: skip
        pattern = "#,##0" if abs(value) >= 10 else "#,##0.##"  # small axes step by fractions: 0.25, 0.5
        return format_decimal(value, format=pattern, locale=self.formatter.locale)


__all__ = ["GROUPING_PARTS", "NONE_KEY", "PARAMETER_NAMES", "WEEK_OF", "PageLanguage"]
