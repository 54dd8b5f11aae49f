"""Service numbers for reports: reply and resolution times, SLA attainment, volume, backlog, load.

Each number is a SQL query (``*_query`` returns the SQLAlchemy statement, so a
report framework can page, export or wrap it) and a function that runs it
and returns plain rows. Business times come from the SLA metric runs (time
counted on their schedule, pauses excluded); calendar times are computed in
SQL with each database's own date arithmetic. Every query filters on an
indexed column (``ticketing_ticket.created_at``/``status``/``assignee_id``,
``ticketing_sla_metric.metric, fulfilled_at``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, and_, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from crmcore.models import User
from crmcore_ticketing.models import SlaMetric, SlaPolicy, Status, Ticket

if TYPE_CHECKING:
    from sqlalchemy.sql import Select

    from crmcore.crm import CRM

GROUPS = ("channel", "priority", "category", "product")
OPEN_STATUSES = (Status.NEW.value, Status.OPEN.value, Status.PENDING.value, Status.ON_HOLD.value)


class seconds_between(FunctionElement[float]):
    """Seconds from the first timestamp to the second, in the database's own arithmetic."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _sqlite_seconds(element: Any, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"((julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _postgresql_seconds(element: Any, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"


@compiles(seconds_between, "mysql")
@compiles(seconds_between, "mariadb")
def _mysql_seconds(element: Any, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"(TIMESTAMPDIFF(MICROSECOND, {compiler.process(start, **kw)}, {compiler.process(end, **kw)}) / 1000000.0)"


def _group_column(by: str | None) -> ColumnElement[Any] | None:
    if by is None:
        return None
    if by not in GROUPS:
        from crmcore.errors import ValidationError

        raise ValidationError({"by": f"group by one of {', '.join(GROUPS)}"})
    column: ColumnElement[Any] = getattr(Ticket, by)
    return column


def _rows(crm: CRM, query: Select[Any]) -> list[dict[str, Any]]:
    with crm.transaction(readonly=True) as ctx:
        return [dict(row._mapping) for row in ctx.session.execute(query)]


# -- reply and resolution times --------------------------------------------------------------


def metric_times_query(metric: str, since: datetime, until: datetime, by: str | None = None) -> Select[Any]:
    """Completed runs of *metric* in ``[since, until)``: count, business and calendar minutes (avg, max)."""
    group = _group_column(by)
    business = SlaMetric.elapsed_seconds / 60.0
    calendar = seconds_between(SlaMetric.started_at, SlaMetric.fulfilled_at) / 60.0
    columns: list[Any] = [
        func.count().label("count"),
        func.avg(business).label("avg_business_minutes"),
        func.max(business).label("max_business_minutes"),
        func.avg(calendar).label("avg_calendar_minutes"),
        func.max(calendar).label("max_calendar_minutes"),
    ]
    query = (
        select(*([group.label(by)] if group is not None and by else []), *columns)
        .select_from(SlaMetric)
        .join(Ticket, Ticket.id == SlaMetric.ticket_id)
        .where(SlaMetric.metric == metric, SlaMetric.fulfilled_at >= since, SlaMetric.fulfilled_at < until)
    )
    if group is not None:
        query = query.group_by(group).order_by(group)
    return query


def first_reply_times(crm: CRM, since: datetime, until: datetime, *, by: str | None = None) -> list[dict[str, Any]]:
    """First reply times (business and calendar minutes) of runs met in the period."""
    return _round(_rows(crm, metric_times_query("first_reply", since, until, by)))


def resolution_times(crm: CRM, since: datetime, until: datetime, *, by: str | None = None) -> list[dict[str, Any]]:
    """Resolution times of tickets solved in the period (a reopened ticket counts at its last solve)."""
    return _round(_rows(crm, metric_times_query("resolution", since, until, by)))


def _round(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(float(v), 1) if k.endswith("_minutes") and v is not None else v for k, v in r.items()}
            for r in rows]  # fmt: skip


# -- SLA attainment -------------------------------------------------------------------------------


def sla_attainment_query(since: datetime, until: datetime) -> Select[Any]:
    """Per policy, priority and metric: runs completed in the period, met in time, breached."""
    late = and_(SlaMetric.due_at.is_not(None), SlaMetric.fulfilled_at > SlaMetric.due_at)
    breached = case((SlaMetric.breached_at.is_not(None), 1), (late, 1), else_=0)
    columns: list[Any] = [
        SlaPolicy.name.label("policy"),
        SlaMetric.priority,
        SlaMetric.metric,
        func.count().label("completed"),
        func.sum(breached).label("breached"),
    ]
    query: Select[Any] = (
        select(*columns)
        .select_from(SlaMetric)
        .outerjoin(SlaPolicy, SlaPolicy.id == SlaMetric.policy_id)
        .where(SlaMetric.state == "fulfilled", SlaMetric.fulfilled_at >= since, SlaMetric.fulfilled_at < until)
        .group_by(SlaPolicy.name, SlaMetric.priority, SlaMetric.metric)
        .order_by(SlaPolicy.name, SlaMetric.priority, SlaMetric.metric)
    )
    return query


def sla_attainment(crm: CRM, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """SLA attainment per policy and priority: the share of completed runs met in time (percent)."""
    rows = _rows(crm, sla_attainment_query(since, until))
    for row in rows:
        row["breached"] = int(row["breached"] or 0)
        row["met"] = row["completed"] - row["breached"]
        row["attainment_percent"] = round(100.0 * row["met"] / row["completed"], 1) if row["completed"] else None
    return rows


# -- volume, backlog, load ----------------------------------------------------------------------------


def volume_query(since: datetime, until: datetime, by: tuple[str, ...] = ("channel", "category")) -> Select[Any]:
    """Tickets created in the period, counted by the given fields."""
    groups = [c for c in (_group_column(b) for b in by) if c is not None]
    query: Select[Any] = (
        select(*groups, func.count().label("tickets"))
        .where(Ticket.created_at >= since, Ticket.created_at < until)
        .group_by(*groups)
        .order_by(*groups)
    )
    return query


def volume(crm: CRM, since: datetime, until: datetime, *, by: tuple[str, ...] = ("channel", "category")
           ) -> list[dict[str, Any]]:  # fmt: skip
    """Ticket volume by channel and category (or other fields)."""
    return _rows(crm, volume_query(since, until, by))


BUCKETS = ((timedelta(days=1), "under 1 day"), (timedelta(days=3), "1-3 days"), (timedelta(days=7), "3-7 days"))


def backlog_query(now: datetime) -> Select[Any]:
    """Unsolved tickets by status and age bucket, with the oldest creation time."""
    bucket = case(*[(Ticket.created_at > now - limit, label) for limit, label in BUCKETS], else_="over 7 days").label(
        "age"
    )
    return (
        select(Ticket.status, bucket, func.count().label("tickets"), func.min(Ticket.created_at).label("oldest"))
        .where(Ticket.status.in_(OPEN_STATUSES))
        .group_by(Ticket.status, bucket)
        .order_by(Ticket.status, bucket)
    )


def backlog_age(crm: CRM, now: datetime | None = None) -> list[dict[str, Any]]:
    """The backlog: unsolved tickets by status and age (under 1 day, 1-3, 3-7, over 7 days)."""
    return _rows(crm, backlog_query(now or crm.clock.now()))


def agent_load_query(since: datetime) -> Select[Any]:
    """Per assignee: unsolved tickets by status, and tickets solved since *since*."""

    def count_status(*statuses: str) -> Any:
        return func.sum(case((Ticket.status.in_(statuses), 1), else_=0))

    solved = func.sum(case((and_(Ticket.solved_at.is_not(None), Ticket.solved_at >= since), 1), else_=0))
    return (
        select(
            User.email.label("agent"),
            count_status(Status.NEW.value, Status.OPEN.value).label("open"),
            count_status(Status.PENDING.value).label("pending"),
            count_status(Status.ON_HOLD.value).label("on_hold"),
            solved.label("solved"),
        )
        .select_from(Ticket)
        .outerjoin(User, User.id == Ticket.assignee_id)
        .group_by(User.email)
        .order_by(User.email)
    )


def agent_load(crm: CRM, since: datetime) -> list[dict[str, Any]]:
    """Per agent (None = unassigned): open, pending and on-hold tickets, and solved since *since*."""
    return [{k: int(v or 0) if k != "agent" else v for k, v in row.items()}
            for row in _rows(crm, agent_load_query(since))]  # fmt: skip
