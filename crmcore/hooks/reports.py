"""Report hooks: registering reports, and the figures plugins feed into the core's reports.

A report's ``--segment`` is resolved through ``crm_segment_query`` (see the
contact hooks); ``crm_segment_names`` here lists the segments an error names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from sqlalchemy import Select

    from crmcore.context import HookContext
    from crmcore.reports import Report, ReportQuery


@hookspec
def crm_register_reports() -> list[Report]:
    """Declare the reports a plugin offers (``crm report list``, ``crm report run``).

    Called once, the first time a CRM's reports are listed or run. Each
    :class:`~crmcore.reports.Report` builds one SQLAlchemy ``Select`` from the
    validated parameters, so the database aggregates; reports with ``main=True``
    appear on ``crm report dashboard``. Names are dotted (``ticketing.sla``) and
    unique: a second report with a taken name is a start-up error naming both
    plugins. The core registers its marketing and sales reports with
    ``trylast=True``.

    :returns: A list of :class:`~crmcore.reports.Report`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_campaign_cost_contributions(query: ReportQuery, ctx: HookContext) -> list[Select[Any]]:
    """Collect what campaigns cost, for the ROI and cost-per-acquisition report.

    A collector: every implementation answers and the core adds the rows up
    (``UNION ALL``) with the imported ad spend (the core's own contribution).
    Each ``Select`` yields rows with exactly these labelled columns:

    - ``day`` (date, in the CRM's time zone): when the cost was incurred;
    - ``source``, ``campaign``, ``affiliate`` (text or NULL): what it is charged to,
      matching the touchpoints' ``source``/``campaign``/``affiliate`` values;
    - ``cost`` (a Numeric amount) and ``currency`` (ISO code).

    Return every row you have: the core applies the date range and the
    currency. Email marketing contributes its campaigns' costs this way. Runs
    inside the report's read-only unit of work; must not write.

    :param query: The report's parameters (range, grouping, parameters).
    :param ctx: The unit of work (session, CRM, clock).
    :returns: A list of ``Select`` statements (empty to contribute nothing).

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crm_revenue_query(query: ReportQuery, ctx: HookContext) -> Select[Any] | None:
    """Choose the revenue events that attribution credits to campaigns, sources and affiliates.

    Stops at the first non-None result. The core's answer (``trylast``) is the
    recorded purchases; the accounting bridge answers with invoiced revenue, so
    ROI follows what was invoiced. The ``Select`` yields rows with these labelled
    columns: ``contact_id``, ``occurred_at`` (UTC timestamp), ``amount``
    (Numeric) and ``currency``. Return every row: the core applies the range,
    the currency and the segment. Runs inside the report's read-only unit of
    work; must not write.

    :param query: The report's parameters.
    :param ctx: The unit of work.
    :returns: A ``Select``, or ``None`` to leave the choice to others.

    .. versionadded:: 0.1
    """


@hookspec
def crm_segment_names(ctx: HookContext) -> list[str]:
    """Collect the names of the segments that exist, for error messages and listings.

    A collector: every implementation answers with its segments' names. Runs
    inside a read-only unit of work.

    :param ctx: The unit of work.
    :returns: A list of segment names (empty when you define none).

    .. versionadded:: 0.1
    """
