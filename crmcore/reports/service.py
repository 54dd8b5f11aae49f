"""``crm.reports``: the registry of reports, validation of their parameters, and running them."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import date, datetime
from functools import cached_property
from typing import Any

import attrs

from crmcore.context import HookContext
from crmcore.errors import ConfigError, NotFound, ValidationError
from crmcore.reports.model import Report, ReportQuery, ReportResult
from crmcore.reports.sql import PERIODS, label_start, period_labels
from crmcore.services.base import Service


class ReportService(Service):
    """Lists, validates and runs the reports every enabled plugin registered.

    ::

        result = crm.reports.run("marketing.ads", start="2026-01-01", end="2026-03-31", by="campaign")
        for row in result.rows:
            print(row["campaign"], row["ctr"])
    """

    @cached_property
    def registry(self) -> dict[str, Report]:
        """Every registered report by name (collected once from ``crm_register_reports``)."""
        found: dict[str, Report] = {}
        for plugin, reports in self.crm.plugins.collect_by_plugin("crm_register_reports"):
            for report in reports:
                if report.name in found:
                    raise ConfigError(
                        f"report {report.name!r} is registered twice: by plugin {found[report.name].plugin!r} "
                        f"and by plugin {plugin!r}"
                    )
                found[report.name] = attrs.evolve(report, plugin=plugin)
        return dict(sorted(found.items()))

    def list(self) -> builtins.list[Report]:
        """Every report, by name."""
        return list(self.registry.values())

    def get(self, name: str) -> Report:
        """The report called *name*; NotFound lists the reports that exist."""
        try:
            return self.registry[name]
        except KeyError:
            raise NotFound(f"no report named {name!r}; reports: {', '.join(self.registry) or 'none'}") from None

    def main_reports(self) -> builtins.list[Report]:
        """The reports for the dashboard: each enabled plugin's main ones, the core's first."""
        order = {name: index for index, name in enumerate(self.crm.plugins.names)}
        mains = [r for r in self.registry.values() if r.main]
        return sorted(mains, key=lambda r: (r.plugin != "core", r.plugin, order.get(r.plugin, 0)))

    def run(
        self,
        name: str,
        *,
        start: date | str | None = None,
        end: date | str | None = None,
        by: str | None = None,
        segment: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ReportResult:
        """Run report *name* and return its typed rows.

        *start* and *end* are local dates in the CRM's time zone, both included
        (``YYYY-MM-DD`` text is accepted). Every invalid parameter is reported at
        once in one :class:`~crmcore.errors.ValidationError`, naming what is valid.
        """
        report = self.get(name)
        with self.crm.transaction(readonly=True) as ctx:
            from crmcore import permissions

            permissions.require(ctx, "reports.view")
            query = self._query(report, ctx, start, end, by, segment, params or {})
            statement = report.build(query)
            records = ctx.session.execute(statement).mappings().all()
            key = _key_column(report, query)
            rows = [
                {key.name: key.convert(record["key"]), **{c.name: c.convert(record[c.name]) for c in report.columns}}
                for record in records
            ]
            if query.is_period:
                rows = _fill_periods(rows, key.name, report, query)
            return ReportResult(
                report=report,
                columns=(key, *report.columns),
                rows=rows,
                parameters={
                    "from": query.start_date,
                    "to": query.end_date,
                    "by": query.by,
                    "segment": segment,
                    "timezone": query.zone_name,
                    **query.params,
                },
                generated_at=ctx.now,
            )

    def rebuild_rollup(self, *, actor: Any = None) -> int:
        """Recompute the reports' daily rollups from the raw rows, in the CRM's zone; the rows written.

        The services keep the rollups exact on every write; rebuild after
        changing the CRM's time zone (until then the reports read the raw rows)
        or after loading touchpoints or purchases without the services.
        """
        from crmcore.reports.rollup import rebuild

        with self.crm.transaction(actor) as ctx:
            written = rebuild(ctx.session.connection(), self.crm.settings.timezone, ctx.now)
            ctx.audit("report.rollup", "report", None, {"rows": written, "zone": self.crm.settings.timezone})
        return written

    def dashboard(
        self, *, start: date | str | None = None, end: date | str | None = None
    ) -> builtins.list[ReportResult]:
        """Run every main report (default grouping) over one range."""
        return [self.run(report.name, start=start, end=end) for report in self.main_reports()]

    def _query(
        self,
        report: Report,
        ctx: HookContext,
        start: date | str | None,
        end: date | str | None,
        by: str | None,
        segment: str | None,
        given: Mapping[str, Any],
    ) -> ReportQuery:
        errors: dict[str, str] = {}
        start_date = _parse_date(start, "from", errors)
        end_date = _parse_date(end, "to", errors)
        if start_date and end_date and end_date < start_date:
            errors["to"] = f"{end_date} is before from ({start_date}): give the earlier date first"
        params: dict[str, Any] = {}
        known = ", ".join(p.name for p in report.params) or "none"
        for param_name, raw in given.items():
            param = report.param(param_name)
            if param is None:
                errors[f"param {param_name}"] = f"unknown parameter of {report.name}; parameters: {known}"
                continue
            try:
                params[param_name] = param.parse(raw)
            except (TypeError, ValueError) as exc:
                errors[f"param {param_name}"] = str(exc) or f"{raw!r} is not acceptable"
        for param in report.params:
            params.setdefault(param.name, param.default)
        query = ReportQuery(
            report=report, ctx=ctx, by=by or report.default_by, start_date=start_date, end_date=end_date,
            segment=segment, params=params,
        )  # fmt: skip
        groupings = report.groupings(query) if callable(report.groupings) else report.groupings
        if query.by not in groupings:
            errors["by"] = f"unknown grouping {query.by!r} for {report.name}; groupings: {', '.join(groupings)}"
        if segment:
            if not report.segments:
                errors["segment"] = f"{report.name} cannot be restricted to a segment"
            else:
                query.segment_select = ctx.call("crm_segment_query", name=segment)
                if query.segment_select is None:
                    names = sorted(ctx.crm.plugins.collect("crm_segment_names", ctx=ctx))
                    listing = f"; segments: {', '.join(names)}" if names else ""
                    errors["segment"] = f"no segment named {segment!r}{listing}"
        if errors:
            raise ValidationError(errors)
        return query


def _parse_date(value: date | str | None, field: str, errors: dict[str, str]) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        errors[field] = "give a date (YYYY-MM-DD), not a date and time"
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        errors[field] = f"{value!r} is not a date (YYYY-MM-DD)"
        return None


def _key_column(report: Report, query: ReportQuery) -> Any:
    from crmcore.reports.model import Column

    kind = "period" if query.is_period else "text"
    return Column(name=query.by, label=query.by.replace("_", " ").replace(".", " "), type=kind)


def _fill_periods(rows: list[dict[str, Any]], key: str, report: Report, query: ReportQuery) -> list[dict[str, Any]]:
    """Add the periods of the range that have no data (zeros for counts and sums), in time order."""
    by_label = {row[key]: row for row in rows if row[key] is not None}
    undated = [row for row in rows if row[key] is None]
    present = [label_start(label, query.by) for label in by_label]
    first = query.start_date or (min(present) if present else None)
    last = query.end_date or (max(present) if present else None)
    if first is None or last is None:
        return rows
    labels = period_labels(min([first, *present]), max([last, *present]), query.by)
    empty = {c.name: c.empty for c in report.columns}
    return [by_label.get(label) or {key: label, **empty} for label in labels] + undated


__all__ = ["PERIODS", "ReportService"]
