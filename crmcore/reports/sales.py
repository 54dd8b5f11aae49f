"""The core's sales reports: conversion, sales cycle, pipeline, win rate, reps, forecast."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, case, func, literal, literal_column, null, select
from sqlalchemy.orm import aliased

from crmcore.errors import ValidationError
from crmcore.i18n import N_
from crmcore.models import (
    Activity,
    Contact,
    Interaction,
    LifecycleChange,
    Opportunity,
    Pipeline,
    PipelineStage,
    Purchase,
    Stage,
    Team,
    User,
)
from crmcore.reports.common import CURRENCY, currency, union, with_periods
from crmcore.reports.model import Chart, Column, Param, Report, ReportQuery, count, money_sum
from crmcore.reports.sql import days_between, ratio, unindexed

CUSTOMER = Stage.CUSTOMER.value
SOURCE_FILTER = Param(name=N_("source"), help="Only contacts from this source.")


def _contact_key(query: ReportQuery, contact: Any) -> tuple[Any, Any]:
    """Key for contact-based groupings (source, owner, country) and the join it needs (or None)."""
    if query.by == "owner":
        owner = aliased(User, name="owner")
        return owner.name, (owner, owner.id == contact.owner_id)
    return getattr(contact, query.by), None


# -- lead-to-customer conversion -------------------------------------------------------


def build_conversion(query: ReportQuery) -> Any:
    """Leads captured in the range, and how many of them qualified and became customers (ever)."""
    if _per_contact_pays(query):
        return _with_rates(query, _conversion_per_contact(query))
    later = aliased(LifecycleChange, name="later")

    def reached(*stages: str) -> Any:
        # EXISTS (SELECT 1 …), not SELECT *: SQLite then answers it from the index alone
        found: Select[Any] = select(literal_column("1")).where(later.contact_id == LifecycleChange.contact_id,
                                                  later.to_stage.in_(stages))  # fmt: skip
        return case((found.exists(), 1), else_=0)

    key, join = (query.period(LifecycleChange.occurred_at), None) if query.is_period else _contact_key(query, Contact)
    facts = (
        select(
            key.label("key"),
            reached(Stage.PROSPECT.value, CUSTOMER).label("qualified"),
            reached(CUSTOMER).label("customer"),
        )
        .select_from(LifecycleChange)
        .join(Contact, Contact.id == LifecycleChange.contact_id)
        .where(
            LifecycleChange.from_stage.is_(None),
            LifecycleChange.to_stage == Stage.LEAD.value,
            # SQLite would otherwise search (to_stage, occurred_at) by the range and visit the contacts
            # and the EXISTS probes in random order; (to_stage, contact_id, occurred_at) visits them in id
            # order, with the range checked in the index, 2-3x faster at 1M touchpoints
            query.in_range(unindexed(LifecycleChange.occurred_at)),
            query.in_segment(LifecycleChange.contact_id),
        )
    )
    if join is not None:
        facts = facts.outerjoin(*join)
    if query.param("source"):
        facts = facts.where(Contact.source == query.param("source"))
    sub = facts.subquery("facts")
    # Rates are computed over the totals, so each EXISTS runs once per lead (SQLite would repeat a
    # subquery column used twice in one aggregate query).
    totals = select(
        sub.c.key,
        func.count().label("leads"),
        func.sum(sub.c.qualified).label("qualified"),
        func.sum(sub.c.customer).label("customers"),
    ).group_by(sub.c.key)
    return _with_rates(query, totals)


def _with_rates(query: ReportQuery, counted: Any) -> Any:
    """The conversion report's rows from *counted* ``(key, leads, qualified, customers)``."""
    t = counted.subquery("totals").c
    statement = select(
        t.key, t.leads, t.qualified, t.customers,
        ratio(t.qualified, t.leads).label("qualification_rate"),
        ratio(t.customers, t.leads).label("conversion_rate"),
    )  # fmt: skip
    return statement.order_by(t.key if query.is_period else t.leads.desc(), t.key)


def _per_contact_pays(query: ReportQuery) -> bool:
    """PostgreSQL: whether to count a wide range's leads per contact in one ordered pass (not two probes each).

    Probing each lead's stages twice costs two random index lookups per lead
    (11 s for 1,000,000 leads at 10M touchpoints); merging the contacts with
    their stage history in contact order reads both once (about 2 s), whatever
    the range, so it pays for a range that spans at least a sixth of the leads'
    capture times (two index seeks find the span). Periods key each lead row by
    its own time and keep the probes; SQLite and MariaDB probe in contact order
    already.
    """
    if query.dialect != "postgresql" or query.is_period:
        return False
    if query.start is None and query.end is None:
        return True
    captured = select(LifecycleChange.occurred_at).where(LifecycleChange.to_stage == Stage.LEAD.value)
    first = query.session.scalar(captured.order_by(LifecycleChange.occurred_at).limit(1))
    last = query.session.scalar(captured.order_by(LifecycleChange.occurred_at.desc()).limit(1))
    if first is None or last is None:
        return False
    start, end = max(query.start or first, first), min(query.end or last, last)
    return bool((end - start) * 6 >= last - first)


def _conversion_per_contact(query: ReportQuery) -> Any:
    """``(key, leads, qualified, customers)`` from each contact's lead, qualified and customer rows, counted
    in one pass over the contacts merged with their stage history (both in contact order).

    The same figures as the probes: a contact's leads of the range count as
    qualified (customers) when any of its rows, at any time, reached prospect
    or customer (customer).
    """
    change = LifecycleChange
    qualifying = (Stage.PROSPECT.value, CUSTOMER)
    is_lead = change.from_stage.is_(None) & (change.to_stage == Stage.LEAD.value) & query.in_range(change.occurred_at)
    leads = func.count().filter(is_lead)
    key, join = _contact_key(query, Contact)
    per_contact = (
        select(
            key.label("key"),
            leads.label("leads"),
            func.count().filter(change.to_stage.in_(qualifying)).label("reached_qualified"),
            func.count().filter(change.to_stage == CUSTOMER).label("reached_customer"),
        )
        .select_from(Contact)
        .join(change, change.contact_id == Contact.id)
        .where(change.to_stage.in_((Stage.LEAD.value, *qualifying)), query.in_segment(Contact.id))
        .group_by(Contact.id, key)
        .having(leads > 0)
    )
    if join is not None:
        per_contact = per_contact.outerjoin(*join)
    if query.param("source"):
        per_contact = per_contact.where(Contact.source == query.param("source"))
    c = per_contact.subquery("per_contact").c
    return select(
        c.key,
        func.sum(c.leads).label("leads"),
        func.sum(case((c.reached_qualified > 0, c.leads), else_=0)).label("qualified"),
        func.sum(case((c.reached_customer > 0, c.leads), else_=0)).label("customers"),
    ).group_by(c.key)


CONVERSION = Report(
    name="sales.conversion",
    title=N_("Lead-to-customer conversion rate"),
    description=N_(
        "Leads captured in the range (their first lifecycle entry), per source, owner, country or "
        "capture period: how many reached prospect (or went straight to customer) and how many became "
        "customers, up to now. Rates are of the leads captured; empty for a period without leads."
    ),
    build=build_conversion,
    columns=(
        count("leads", N_("Leads")),
        count("qualified", N_("Qualified")),
        count("customers", N_("Customers")),
        Column(name="qualification_rate", label=N_("Qualification rate"), type="percent"),
        Column(name="conversion_rate", label=N_("Conversion rate"), type="percent"),
    ),
    groupings=with_periods(N_("source"), N_("owner"), N_("country")),
    default_by="source",
    params=(SOURCE_FILTER,),
    chart=Chart(kind="bar", y=("conversion_rate",)),
    dates="the time each lead was captured",
    main=True,
)

# -- sales cycle -------------------------------------------------------------------------


def build_cycle(query: ReportQuery) -> Any:
    """Days from capture to first becoming a customer, for customers won in the range."""
    converted_at = func.min(LifecycleChange.occurred_at)
    converted = (
        select(LifecycleChange.contact_id.label("contact_id"), converted_at.label("converted_at"))
        .where(LifecycleChange.to_stage == CUSTOMER, query.in_segment(LifecycleChange.contact_id))
        .group_by(LifecycleChange.contact_id)
        .having(query.in_range(converted_at))
        .subquery("converted")
    )
    key, join = (query.period(converted.c.converted_at), None) if query.is_period else _contact_key(query, Contact)
    facts = (
        select(key.label("key"), days_between(converted.c.converted_at, Contact.created_at).label("days"))
        .select_from(converted)
        .join(Contact, Contact.id == converted.c.contact_id)
    )
    if join is not None:
        facts = facts.outerjoin(*join)
    if query.param("source"):
        facts = facts.where(Contact.source == query.param("source"))
    sub = facts.subquery("facts")
    customers = func.count()
    return (
        select(
            sub.c.key,
            customers.label("customers"),
            func.avg(sub.c.days).label("avg_days"),
            func.min(sub.c.days).label("min_days"),
            func.max(sub.c.days).label("max_days"),
        )
        .group_by(sub.c.key)
        .order_by(sub.c.key if query.is_period else customers.desc(), sub.c.key)
    )


CYCLE = Report(
    name="sales.cycle",
    title=N_("Average sales cycle (captured to won)"),
    description=N_(
        "Contacts who first became customers in the range: days from their capture to that moment "
        "(average, shortest, longest), per source, owner, country or period of becoming a customer."
    ),
    build=build_cycle,
    columns=(
        count("customers", N_("Customers")),
        Column(name="avg_days", label=N_("Avg days"), type="days"),
        Column(name="min_days", label=N_("Min days"), type="days"),
        Column(name="max_days", label=N_("Max days"), type="days"),
    ),
    groupings=with_periods(N_("source"), N_("owner"), N_("country")),
    default_by="month",
    params=(SOURCE_FILTER,),
    chart=Chart(kind="bar", y=("avg_days",)),
    dates="the time each contact first became a customer",
)

# -- pipeline -----------------------------------------------------------------------------


def _pipeline_id(query: ReportQuery) -> Any:
    """The chosen pipeline's id as a scalar subquery (a named one is checked first, to name the valid ones)."""
    name = query.param("pipeline")
    if name and query.session.scalar(select(Pipeline.id).where(Pipeline.name == name)) is None:
        names = query.session.scalars(select(Pipeline.name).order_by(Pipeline.name)).all()
        raise ValidationError({"param pipeline": f"no pipeline {name!r}; pipelines: {', '.join(names) or 'none'}"})
    condition = Pipeline.name == name if name else Pipeline.is_default.is_(True)
    return select(Pipeline.id).where(condition).scalar_subquery()


def build_pipeline(query: ReportQuery) -> Any:
    """Open opportunities per stage (every open stage shown) or owner: count, amount, weighted amount."""
    code = currency(query)
    pipeline_id = _pipeline_id(query)
    in_scope = and_(
        Opportunity.status == "open",
        Opportunity.currency == code,
        query.in_range(Opportunity.created_at),
        query.in_segment(Opportunity.contact_id),
    )
    stage = PipelineStage
    weighted = Opportunity.amount * stage.probability / 100
    age = days_between(literal(query.ctx.now, Opportunity.created_at.type), Opportunity.created_at)
    facts: Any
    if query.by == "stage":
        facts = (
            select(
                stage.id.label("group_id"),
                stage.name.label("key"),
                stage.position.label("position"),
                Opportunity.id.label("opportunity_id"),
                Opportunity.amount.label("amount"),
                weighted.label("weighted"),
                age.label("age"),
            )
            .select_from(stage)
            .outerjoin(Opportunity, and_(Opportunity.stage_id == stage.id, in_scope))
            .where(stage.pipeline_id == pipeline_id, stage.outcome == "open")
        )
    else:
        owner = aliased(User, name="owner")
        facts = (
            select(
                Opportunity.owner_id.label("group_id"),
                owner.name.label("key"),
                literal(0).label("position"),
                Opportunity.id.label("opportunity_id"),
                Opportunity.amount.label("amount"),
                weighted.label("weighted"),
                age.label("age"),
            )
            .select_from(Opportunity)
            .join(stage, stage.id == Opportunity.stage_id)
            .outerjoin(owner, owner.id == Opportunity.owner_id)
            .where(Opportunity.pipeline_id == pipeline_id, in_scope)
        )
    sub = facts.subquery("facts")
    # grouped by the stage's (or owner's) id, which the join reads in order: no sort to group by a name
    key = func.min(sub.c.key)
    statement = select(
        key.label("key"),
        func.count(sub.c.opportunity_id).label("opportunities"),
        func.coalesce(func.sum(sub.c.amount), 0).label("amount"),
        func.coalesce(func.sum(sub.c.weighted), 0).label("weighted_amount"),
        func.avg(sub.c.age).label("avg_age_days"),
    ).group_by(sub.c.group_id)
    if query.by == "stage":
        return statement.order_by(func.min(sub.c.position))
    return statement.order_by(func.sum(sub.c.amount).desc(), key)


PIPELINE = Report(
    name="sales.pipeline",
    title=N_("Pipeline by stage, with weighted value"),
    description=N_(
        "Open opportunities of one pipeline (the default one unless pipeline=NAME) in one currency, per "
        "open stage in pipeline order (empty stages included) or per owner: how many, their amount, the "
        "amount weighted by each stage's win probability, and their average age in days. The range, "
        "when given, selects opportunities by creation time."
    ),
    build=build_pipeline,
    columns=(
        count("opportunities", N_("Opportunities")),
        money_sum("amount", N_("Amount")),
        money_sum("weighted_amount", N_("Weighted amount")),
        Column(name="avg_age_days", label=N_("Avg age (days)"), type="days"),
    ),
    groupings=(N_("stage"), N_("owner")),
    terms=("stage",),
    default_by="stage",
    params=(Param(name=N_("pipeline"), help="Pipeline name (default: the default pipeline)."), CURRENCY),
    chart=Chart(kind="funnel", y=("amount", "weighted_amount")),
    dates="opportunities by creation time",
    main=True,
)

# -- win rate ------------------------------------------------------------------------------


def build_win_rate(query: ReportQuery) -> Any:
    """Opportunities closed in the range: won, lost, win rate, won amount, days to close."""
    code = currency(query)
    won = Opportunity.status == "won"
    if query.is_period:
        key: Any = query.period(Opportunity.closed_at)
    elif query.by == "pipeline":
        key = select(Pipeline.name).where(Pipeline.id == Opportunity.pipeline_id).scalar_subquery()
    elif query.by == "owner":
        key = select(User.name).where(User.id == Opportunity.owner_id).scalar_subquery()
    else:
        key = select(Contact.source).where(Contact.id == Opportunity.contact_id).scalar_subquery()
    sub = (
        select(
            key.label("key"),
            case((won, 1), else_=0).label("won"),
            case((won, 0), else_=1).label("lost"),
            case((won & (Opportunity.currency == code), Opportunity.amount), else_=null()).label("won_amount"),
            case((won, days_between(Opportunity.closed_at, Opportunity.created_at)), else_=null()).label("days"),
        )
        .where(
            Opportunity.status.in_(("won", "lost")),
            Opportunity.closed_at.is_not(None),
            query.in_range(Opportunity.closed_at),
            query.in_segment(Opportunity.contact_id),
        )
        .subquery("facts")
    )
    statement = select(
        sub.c.key,
        func.sum(sub.c.won).label("won"),
        func.sum(sub.c.lost).label("lost"),
        ratio(func.sum(sub.c.won), func.count()).label("win_rate"),
        func.coalesce(func.sum(sub.c.won_amount), 0).label("won_amount"),
        func.avg(sub.c.won_amount).label("avg_deal"),
        func.avg(sub.c.days).label("avg_days_to_win"),
    ).group_by(sub.c.key)
    return statement.order_by(sub.c.key if query.is_period else func.count().desc(), sub.c.key)


WIN_RATE = Report(
    name="sales.win_rate",
    title=N_("Win rate"),
    description=N_(
        "Opportunities closed in the range: won, lost, win rate (won / closed), won amount and average "
        "deal size (in one currency), and average days from opening to winning; per period, owner, "
        "pipeline or contact source."
    ),
    build=build_win_rate,
    columns=(
        count("won", N_("Won")),
        count("lost", N_("Lost")),
        Column(name="win_rate", label=N_("Win rate"), type="percent"),
        money_sum("won_amount", N_("Won amount")),
        Column(name="avg_deal", label=N_("Avg deal"), type="money"),
        Column(name="avg_days_to_win", label=N_("Avg days to win"), type="days"),
    ),
    groupings=with_periods(N_("owner"), N_("pipeline"), N_("source")),
    default_by="month",
    params=(CURRENCY,),
    chart=Chart(kind="bar", y=("win_rate",)),
    dates="opportunities by closing time",
)

# -- per rep ----------------------------------------------------------------------------------

REP_MEASURES = ("leads", "won", "won_amount", "revenue", "cycle_days", "activities", "interactions")


def _rep_part(user_id: Any, **measures: Any) -> Any:
    values = [
        (measures[name] if name in measures else (null() if name == "cycle_days" else literal(0))).label(name)
        for name in REP_MEASURES
    ]
    return select(user_id.label("user_id"), *values)


def build_reps(query: ReportQuery) -> Any:
    """Per rep: leads handled, deals won, revenue, cycle time, activities and interactions in the range."""
    code = currency(query)
    won = Opportunity.status == "won"
    parts = [
        _rep_part(Contact.owner_id, leads=literal(1)).where(
            query.in_range(Contact.created_at), query.in_segment(Contact.id), Contact.merged_into_id.is_(None)
        ),
        _rep_part(
            Opportunity.owner_id,
            won=literal(1),
            won_amount=case((Opportunity.currency == code, Opportunity.amount), else_=0),
            cycle_days=days_between(Opportunity.closed_at, Opportunity.created_at),
        ).where(won, query.in_range(Opportunity.closed_at), query.in_segment(Opportunity.contact_id)),
        _rep_part(Purchase.rep_id, revenue=Purchase.total).where(
            query.in_range(Purchase.purchased_at), Purchase.currency == code, query.in_segment(Purchase.contact_id)
        ),
        _rep_part(Activity.owner_id, activities=literal(1)).where(
            Activity.done_at.is_not(None), query.in_range(Activity.done_at), query.in_segment(Activity.contact_id)
        ),
        _rep_part(Interaction.user_id, interactions=literal(1)).where(
            query.in_range(Interaction.occurred_at), query.in_segment(Interaction.contact_id)
        ),
    ]
    facts = union(*parts)
    if query.by == "team":
        label: Any = Team.name
        group: Any = User.team_id
    else:
        label, group = User.name, facts.c.user_id
    statement = (
        select(
            func.min(label).label("key"),
            func.sum(facts.c.leads).label("leads"),
            func.sum(facts.c.won).label("won"),
            func.sum(facts.c.won_amount).label("won_amount"),
            func.sum(facts.c.revenue).label("revenue"),
            func.avg(facts.c.cycle_days).label("avg_cycle_days"),
            func.sum(facts.c.activities).label("activities"),
            func.sum(facts.c.interactions).label("interactions"),
        )
        .select_from(facts)
        .outerjoin(User, User.id == facts.c.user_id)
        .group_by(group)
    )
    if query.by == "team":
        statement = statement.outerjoin(Team, Team.id == User.team_id)
    return statement.order_by(func.sum(facts.c.revenue).desc(), func.min(label))


REPS = Report(
    name="sales.reps",
    title=N_("Results per rep"),
    description=N_(
        "Per rep (or team) in the range: leads handled (contacts they own, captured in the range), "
        "opportunities won and their amount, revenue of the purchases they sold, average days from "
        "opening to winning, activities completed and interactions logged. Unassigned work shows "
        "under (none)."
    ),
    build=build_reps,
    columns=(
        count("leads", N_("Leads handled")),
        count("won", N_("Won")),
        money_sum("won_amount", N_("Won amount")),
        money_sum("revenue", N_("Revenue")),
        Column(name="avg_cycle_days", label=N_("Avg cycle (days)"), type="days"),
        count("activities", N_("Activities done")),
        count("interactions", N_("Interactions")),
    ),
    groupings=(N_("rep"), N_("team")),
    default_by="rep",
    params=(CURRENCY,),
    chart=Chart(kind="bar", y=("revenue", "won_amount")),
    dates="contacts by capture, opportunities by closing, purchases, activities by completion, interactions by time",
    main=True,
)

# -- forecast -----------------------------------------------------------------------------------


def build_forecast(query: ReportQuery) -> Any:
    """Open opportunities by expected close period: count, amount, weighted amount."""
    code = currency(query)
    facts = (
        select(
            query.date_period(Opportunity.expected_close_on).label("key"),
            Opportunity.amount.label("amount"),
            (Opportunity.amount * PipelineStage.probability / 100).label("weighted"),
        )
        .join(PipelineStage, PipelineStage.id == Opportunity.stage_id)
        .where(
            Opportunity.status == "open",
            Opportunity.currency == code,
            query.in_dates(Opportunity.expected_close_on),
            query.in_segment(Opportunity.contact_id),
        )
    )
    if query.param("pipeline"):
        facts = facts.join(Pipeline, Pipeline.id == Opportunity.pipeline_id).where(
            Pipeline.name == query.param("pipeline")
        )
    sub = facts.subquery("facts")
    return (
        select(
            sub.c.key,
            func.count().label("opportunities"),
            func.sum(sub.c.amount).label("amount"),
            func.sum(sub.c.weighted).label("weighted_amount"),
        )
        .group_by(sub.c.key)
        .order_by(sub.c.key)
    )


FORECAST = Report(
    name="sales.forecast",
    title=N_("Forecast by close month"),
    description=N_(
        "Open opportunities (one currency) by the period of their expected close date: how many, their "
        "amount, and the amount weighted by their stage's win probability. Opportunities without a close "
        "date show under (none); the range selects by expected close date."
    ),
    build=build_forecast,
    columns=(
        count("opportunities", N_("Opportunities")),
        money_sum("amount", N_("Amount")),
        money_sum("weighted_amount", N_("Weighted amount")),
    ),
    groupings=(N_("month"), N_("quarter"), N_("week"), N_("year")),
    default_by="month",
    params=(Param(name=N_("pipeline"), help="Only this pipeline (default: all)."), CURRENCY),
    chart=Chart(kind="bar", y=("amount", "weighted_amount")),
    dates="open opportunities by expected close date",
    main=True,
)

SALES_REPORTS = [CONVERSION, CYCLE, PIPELINE, WIN_RATE, REPS, FORECAST]

__all__ = ["SALES_REPORTS"]
