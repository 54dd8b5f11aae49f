"""Reports: named, documented queries computed in SQL, with typed columns, as tables, CSV, JSON or HTML.

A plugin registers reports through ``crm_register_reports``; ``crm.reports``
lists and runs them (``crm report list|show|run|dashboard`` on the command
line). See ``docs/reports.md``.
"""

from crmcore.reports.model import (
    COLUMN_TYPES,
    Chart,
    Column,
    Param,
    Report,
    ReportQuery,
    ReportResult,
    count,
    money_sum,
)
from crmcore.reports.sql import PERIODS, age_years, days_between, floor_div, ratio, safe_div, unindexed

__all__ = [
    "COLUMN_TYPES",
    "PERIODS",
    "Chart",
    "Column",
    "Param",
    "Report",
    "ReportQuery",
    "ReportResult",
    "age_years",
    "count",
    "days_between",
    "floor_div",
    "money_sum",
    "ratio",
    "safe_div",
    "unindexed",
]
