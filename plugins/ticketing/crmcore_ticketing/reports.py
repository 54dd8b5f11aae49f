"""Service numbers for reports: reply and resolution times, SLA attainment, volume, backlog, load.

The reports registered with the report framework (``crm report run ticketing.sla``)
are at the end of this module; the plain query functions before them return rows
for code that wants the numbers without the framework.

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

from sqlalchemy import Float, and_, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from crmcore.db import UTCDateTime
from crmcore.i18n import N_
from crmcore.models import User
from crmcore.reports import Chart, Column, Param, Report, ReportQuery, count, days_between, ratio
from crmcore.reports.common import with_periods
from crmcore_ticketing.models import METRICS, SlaMetric, SlaPolicy, Status, Ticket

if TYPE_CHECKING:
    from sqlalchemy.sql import Select

    from crmcore.crm import CRM

GROUPS = (N_("channel"), N_("priority"), N_("category"), N_("product"))
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


# -- registered reports (``crm report run ticketing.*``) ---------------------------------------------

TICKET_GROUPS = (N_("channel"), N_("priority"), N_("category"), N_("product"), N_("agent"))


def _ticket_key(query: ReportQuery, at: Any) -> Any:
    """The grouping key of a ticket row: a period of *at*, the assignee's email, or a ticket field."""
    if query.is_period:
        return query.period(at)
    if query.by == "agent":
        return func.coalesce(User.email, "(unassigned)")
    return getattr(Ticket, query.by)


def _times_builder(metric: str) -> Any:
    def build(query: ReportQuery) -> Select[Any]:
        business = SlaMetric.elapsed_seconds / 3600.0
        calendar = seconds_between(SlaMetric.started_at, SlaMetric.fulfilled_at) / 3600.0
        key = _ticket_key(query, SlaMetric.fulfilled_at)
        columns: list[Any] = [
            key.label("key"),
            func.count().label("tickets"),
            func.avg(business).label("avg_business_hours"),
            func.max(business).label("max_business_hours"),
            func.avg(calendar).label("avg_calendar_hours"),
        ]
        statement: Select[Any] = (
            select(*columns)
            .select_from(SlaMetric)
            .join(Ticket, Ticket.id == SlaMetric.ticket_id)
            .outerjoin(User, User.id == Ticket.assignee_id)
            .where(
                SlaMetric.metric == metric, SlaMetric.fulfilled_at.is_not(None), query.in_range(SlaMetric.fulfilled_at)
            )
            .where(query.in_segment(Ticket.requester_id))
            .group_by(key)
            .order_by(key)
        )
        return statement

    return build


def _hours(name: str, label: str) -> Column:
    return Column(name=name, label=label, type="number", help="hours")


def build_sla(query: ReportQuery) -> Select[Any]:
    """Completed SLA metric runs in the range: met in time, breached, attainment."""
    late = and_(SlaMetric.due_at.is_not(None), SlaMetric.fulfilled_at > SlaMetric.due_at)
    breached = func.sum(case((SlaMetric.breached_at.is_not(None), 1), (late, 1), else_=0))
    if query.is_period:
        key: Any = query.period(SlaMetric.fulfilled_at)
    elif query.by == "policy":
        key = func.coalesce(SlaPolicy.name, "(none)")
    else:
        key = getattr(SlaMetric, query.by)
    completed = func.count()
    columns: list[Any] = [
        key.label("key"),
        completed.label("completed"),
        (completed - breached).label("met"),
        breached.label("breached"),
        ratio(completed - breached, completed).label("attainment"),
    ]
    statement: Select[Any] = (
        select(*columns)
        .select_from(SlaMetric)
        .join(Ticket, Ticket.id == SlaMetric.ticket_id)
        .outerjoin(SlaPolicy, SlaPolicy.id == SlaMetric.policy_id)
        .where(SlaMetric.state == "fulfilled", query.in_range(SlaMetric.fulfilled_at))
        .where(query.in_segment(Ticket.requester_id))
        .group_by(key)
        .order_by(key)
    )
    metric = query.param("metric")
    if metric:
        statement = statement.where(SlaMetric.metric == metric)
    return statement


def build_volume(query: ReportQuery) -> Select[Any]:
    """Tickets created in the range."""
    key = _ticket_key(query, Ticket.created_at)
    statement: Select[Any] = (
        select(key.label("key"), func.count().label("tickets"))
        .select_from(Ticket)
        .outerjoin(User, User.id == Ticket.assignee_id)
        .where(query.in_range(Ticket.created_at), query.in_segment(Ticket.requester_id))
        .group_by(key)
        .order_by(key)
    )
    return statement


def build_backlog(query: ReportQuery) -> Select[Any]:
    """Tickets not solved, as of the end of the range (or now), by status, age, priority or agent."""
    as_of = query.end or query.ctx.now
    age = days_between(literal(as_of, UTCDateTime()), Ticket.created_at)
    if query.by == "age":
        key: Any = case(*[(Ticket.created_at > as_of - limit, label) for limit, label in BUCKETS], else_="over 7 days")
    elif query.by == "agent":
        key = func.coalesce(User.email, "(unassigned)")
    else:
        key = getattr(Ticket, query.by)
    columns: list[Any] = [
        key.label("key"),
        func.count().label("tickets"),
        func.avg(age).label("avg_age_days"),
        func.max(age).label("oldest_days"),
    ]
    statement: Select[Any] = (
        select(*columns)
        .select_from(Ticket)
        .outerjoin(User, User.id == Ticket.assignee_id)
        .where(Ticket.status.in_(OPEN_STATUSES), Ticket.created_at < as_of, query.in_segment(Ticket.requester_id))
        .group_by(key)
        .order_by(key)
    )
    return statement


def build_agents(query: ReportQuery) -> Select[Any]:
    """Per agent: tickets open, pending and on hold now, and solved in the range."""

    def count_status(*statuses: str) -> Any:
        return func.sum(case((Ticket.status.in_(statuses), 1), else_=0))

    solved = func.sum(case((and_(Ticket.solved_at.is_not(None), query.in_range(Ticket.solved_at)), 1), else_=0))
    key = func.coalesce(User.email, "(unassigned)")
    columns: list[Any] = [
        key.label("key"),
        count_status(Status.NEW.value, Status.OPEN.value).label("open"),
        count_status(Status.PENDING.value).label("pending"),
        count_status(Status.ON_HOLD.value).label("on_hold"),
        solved.label("solved"),
    ]
    statement: Select[Any] = (
        select(*columns)
        .select_from(Ticket)
        .outerjoin(User, User.id == Ticket.assignee_id)
        .where(query.in_segment(Ticket.requester_id))
        .group_by(key)
        .order_by(key)
    )
    return statement


def _metric_choice(value: str) -> str:
    if value not in METRICS:
        raise ValueError(f"{value!r} is not one of {', '.join(METRICS)}")
    return value


def registered_reports() -> list[Report]:
    """The ticketing reports for ``crm_register_reports``."""
    times = (
        count("tickets", N_("Tickets")),
        _hours("avg_business_hours", N_("Avg business hours")),
        _hours("max_business_hours", N_("Max business hours")),
        _hours("avg_calendar_hours", N_("Avg calendar hours")),
    )
    return [
        Report(
            name="ticketing.first_reply",
            title=N_("First reply time"),
            description=N_(
                "Tickets whose first reply target was met (on time or late) in the range: hours to the first "
                "public agent reply, counted on the SLA schedule (business hours, pauses excluded) and in "
                "calendar hours."
            ),
            build=_times_builder("first_reply"),
            columns=times,
            groupings=with_periods(*TICKET_GROUPS),
            terms=("channel", "priority"),
            default_by="channel",
            chart=Chart(kind="bar", y=("avg_business_hours", "avg_calendar_hours")),
            dates="the time of the first reply",
        ),
        Report(
            name="ticketing.resolution",
            title=N_("Resolution time"),
            description=N_(
                "Tickets solved in the range: hours from creation to solving, on the SLA schedule (business "
                "hours, pauses and reopened gaps excluded) and in calendar hours."
            ),
            build=_times_builder("resolution"),
            columns=times,
            groupings=with_periods(*TICKET_GROUPS),
            terms=("channel", "priority"),
            default_by="priority",
            chart=Chart(kind="bar", y=("avg_business_hours", "avg_calendar_hours")),
            dates="the time the ticket was solved",
        ),
        Report(
            name="ticketing.sla",
            title=N_("SLA attainment"),
            description=N_(
                "SLA metric runs completed in the range (first reply, next reply, periodic update, resolution): "
                "how many were met in time and how many breached, per policy, priority, metric or period."
            ),
            build=build_sla,
            columns=(
                count("completed", N_("Completed")),
                count("met", N_("Met in time")),
                count("breached", N_("Breached")),
                Column(name="attainment", label=N_("Attainment"), type="percent"),
            ),
            groupings=with_periods(N_("policy"), N_("priority"), N_("metric")),
            terms=("policy", "priority", "metric"),
            default_by="policy",
            params=(Param(name=N_("metric"), help="Only this metric.", convert=_metric_choice),),
            chart=Chart(kind="bar", y=("attainment",)),
            dates="the time each metric was fulfilled",
            main=True,
        ),
        Report(
            name="ticketing.volume",
            title=N_("Ticket volume"),
            description=N_("Tickets created in the range, per channel, category, priority, product, agent or period."),
            build=build_volume,
            columns=(count("tickets", N_("Tickets")),),
            groupings=with_periods(*TICKET_GROUPS),
            terms=("channel", "priority"),
            default_by="channel",
            chart=Chart(kind="bar", y=("tickets",)),
            dates="the time the ticket was created",
            main=True,
        ),
        Report(
            name="ticketing.backlog",
            title=N_("Backlog age"),
            description=N_(
                "Tickets not solved as of the end of the range (or now): how many, and how old on average and "
                "at most (days since creation), per status, age bucket, priority or agent."
            ),
            build=build_backlog,
            columns=(
                count("tickets", N_("Tickets")),
                Column(name="avg_age_days", label=N_("Avg age"), type="days"),
                Column(name="oldest_days", label=N_("Oldest"), type="days"),
            ),
            groupings=(N_("status"), N_("age"), N_("priority"), N_("agent")),
            terms=("status", "priority"),
            default_by="status",
            chart=Chart(kind="bar", y=("tickets",)),
            dates="only the end: the backlog as of that day",
            main=True,
        ),
        Report(
            name="ticketing.agents",
            title=N_("Agent load"),
            description=N_("Per agent: tickets open, pending and on hold now, and tickets solved in the range."),
            build=build_agents,
            columns=(
                count("open", N_("Open")),
                count("pending", N_("Pending")),
                count("on_hold", N_("On hold")),
                count("solved", N_("Solved")),
            ),
            groupings=(N_("agent"),),
            default_by="agent",
            chart=Chart(kind="bar", y=("open", "pending", "on_hold")),
            dates="the time tickets were solved (for the solved column)",
        ),
    ]
