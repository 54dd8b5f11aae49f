"""Daily rollups for the heavy marketing reports: closed days summed once, the recent days read live.

``marketing.channels`` (its sums), ``marketing.products``, ``marketing.roi``,
``marketing.ads`` and ``marketing.affiliates`` (their clicks and last-click
conversions) read four tables of per-day sums (:mod:`crmcore.models.rollup`,
no personal data) for the *settled* days, and compute the days after them from the raw
rows, so a figure is exact the moment a write commits:

- A day is **settled** once a whole day has passed since it ended (in the
  CRM's zone): days before ``today - 1``. Only settled days are rolled up;
  ``report_rollup_state.rolled_until`` is the first day not rolled up.
- A write dated before today (a backdated touchpoint or purchase, a touch that
  changes the attribution of older sales or conversions, a merge) marks the days it changes
  **dirty** (``report_dirty_day``) in its own transaction: one insert, and only
  for writes into the past; writes of today cost nothing extra. Marking from
  today while rolling up only before yesterday leaves a day's margin for
  transactions that run across midnight (:mod:`crmcore.rollup_marks`).
- A report reads the rollup for rolled-up days that are not dirty and the raw
  rows for the rest, in one snapshot, so it never misses a committed write.
- :func:`refresh` rolls up the newly settled days and recomputes the dirty ones
  (one transaction); a report runs it first when there is work, and the
  ``core.report_rollup`` job runs it hourly. It deletes only the dirty markers
  it read, so a write committed meanwhile stays marked.
- :func:`rebuild` recomputes everything (``crm report rollup``, the migration's
  backfill, data loaded behind the services' back). A CRM whose zone changed
  reads the raw rows until a rebuild.

Touchpoints and purchases are never deleted by the services (erasure keeps
them without what identifies the person), so only inserts and merges change
these figures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs
from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from crmcore.errors import CRMError
from crmcore.models import Purchase, PurchaseLine, TouchKind, Touchpoint
from crmcore.models.rollup import AttributionDaily, ClickDaily, DirtyDay, RollupState, SaleDaily, TouchDaily
from crmcore.reports.common import TOUCH_GROUPINGS, attributed_touch, touch_key
from crmcore.reports.sql import local_time, period_label
from crmcore.rollup_marks import day_start, settled_before

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    from crmcore.crm import CRM
    from crmcore.reports.model import ReportQuery

log = logging.getLogger("crmcore.reports")

#: Groupings of ``marketing.roi`` the attribution rollup keeps.
ROI_GROUPINGS = ("campaign", "source", "affiliate")
#: Per click kind, the groupings the last-click rollup keeps (``marketing.ads``, ``marketing.affiliates``).
CLICK_GROUPINGS = {
    TouchKind.AD_CLICK.value: ("ad", "campaign", "source"),
    TouchKind.AFFILIATE_CLICK.value: ("affiliate",),
}
# -- what a report may read from the rollup --------------------------------------------------


@attrs.frozen
class Coverage:
    """The days a report reads from the rollup; the rest of its range comes from the raw rows."""

    zone: ZoneInfo
    rolled_until: date
    dirty: tuple[date, ...]

    def rolled(self, query: ReportQuery, day: Any) -> Any:
        """Condition on a rollup table's ``day``: in the range, rolled up and not dirty."""
        condition = and_(query.in_dates(day), day < self.rolled_until)
        if self.dirty:
            condition = condition & day.not_in(self.dirty)
        return condition

    def live(self, query: ReportQuery, at: Any) -> Any:
        """Condition on a raw UTC timestamp: in the range and on a day the rollup does not serve.

        Each window is cut to the range here, so every comparison is a tight
        bound: SQLite, given two lower bounds on one column, may search its
        index by the looser one (a year's rows for the range's start instead of
        a day's for the rollup's end).
        """
        windows: list[tuple[datetime, datetime | None]] = [(day_start(self.rolled_until, self.zone), None)]
        windows += [(day_start(d, self.zone), day_start(d + timedelta(days=1), self.zone)) for d in self.dirty]
        conditions = []
        for low, high in windows:
            low = max(low, query.start) if query.start is not None else low
            high = min(high, query.end) if high is not None and query.end is not None else high or query.end
            if high is None:
                conditions.append(at >= low)
            elif low < high:
                conditions.append((at >= low) & (at < high))
        return or_(false(), *conditions)


def coverage(query: ReportQuery) -> Coverage | None:
    """What the rollup serves for *query*, refreshed first when due; None to read only raw rows.

    The raw rows serve a query restricted to a segment (the rollup holds no
    contacts) and a CRM whose zone is not the rollup's.
    """
    if query.segment_select is not None:
        return None
    crm = query.crm
    state = _state(query.session)
    if state is None or state.zone != query.zone_name:
        return None
    if state.rolled_until != settled_before(query.ctx.now, crm.settings.zone) or _has_dirty(query.session):
        # its own transaction; this snapshot may or may not see it, and is exact either way, so a
        # refresh that cannot run now (another writer holds the lock too long) only costs speed
        try:
            refresh(crm)
        except (CRMError, SQLAlchemyError) as exc:
            log.warning("report rollup refresh skipped: %s", exc)
        state = _state(query.session) or state
    if state.rolled_until > settled_before(query.ctx.now, crm.settings.zone):
        return None  # a rollup ahead of the clock that this snapshot cannot see rebuilt: raw rows are exact
    dirty = tuple(sorted(set(query.session.scalars(select(DirtyDay.day)))))
    return Coverage(zone=crm.settings.zone, rolled_until=state.rolled_until, dirty=dirty)


def _state(session: Session) -> Any:
    """The state's zone and rolled_until, or None before the rollup was built."""
    return session.execute(select(RollupState.zone, RollupState.rolled_until).order_by(RollupState.id).limit(1)).first()


def _has_dirty(session: Session) -> bool:
    return session.scalar(select(DirtyDay.id).limit(1)) is not None


# -- computing the rollup from raw rows -------------------------------------------------------


def _day(column: Any, dialect: str, zone: str) -> Any:
    """SQL: the local day of a UTC timestamp (SQLite keeps dates as text)."""
    local = local_time(column, dialect, zone, None)
    if dialect == "sqlite":  # the date part of the text, without parsing it (as date() would)
        return func.substr(local, 1, 10)
    return cast(period_label(local, "day", dialect), Date)


def touch_facts(dialect: str, zone: str, where: Any) -> list[Any]:
    """INSERT sources for ``report_touch_daily``: one grouped SELECT per grouping, plus ``all``."""
    day = _day(Touchpoint.occurred_at, dialect, zone)
    statements = []
    for dimension in (*TOUCH_GROUPINGS, "all"):
        value = touch_key(dimension, Touchpoint) if dimension != "all" else cast(null(), String(255))
        statements.append(
            select(
                day.label("day"),
                literal(dimension).label("dimension"),
                value.label("value"),
                Touchpoint.kind,
                Touchpoint.currency,
                func.sum(Touchpoint.quantity).label("quantity"),
                func.coalesce(func.sum(Touchpoint.value), 0).label("amount"),
            )
            .where(where)
            .group_by(day, *([value] if dimension != "all" else []), Touchpoint.kind, Touchpoint.currency)
        )
    return statements


def sale_figures() -> list[Any]:
    """What products report per group of purchase lines: units, orders, revenue, lowest and highest price."""
    return [
        func.sum(PurchaseLine.quantity).label("units"),
        func.count(PurchaseLine.purchase_id.distinct()).label("orders"),
        func.sum(PurchaseLine.line_total).label("revenue"),
        func.min(PurchaseLine.unit_price).label("min_price"),
        func.max(PurchaseLine.unit_price).label("max_price"),
    ]


def sale_facts(dialect: str, zone: str, where: Any) -> list[Any]:
    """INSERT sources for ``report_sale_daily``: per product, and ``all`` (distinct orders of a day)."""
    day = _day(Purchase.purchased_at, dialect, zone)
    statements = []
    for dimension in ("product", "all"):
        product = PurchaseLine.product_id if dimension == "product" else cast(null(), Integer)
        statements.append(
            select(
                day.label("day"),
                literal(dimension).label("dimension"),
                product.label("product_id"),
                Purchase.currency,
                *sale_figures(),
            )
            .select_from(PurchaseLine)
            .join(Purchase, Purchase.id == PurchaseLine.purchase_id)
            .where(where)
            .group_by(day, *([product] if dimension == "product" else []), Purchase.currency)
        )
    return statements


def revenue_events(window: Any) -> Any:
    """Purchases (the core's revenue events) whose time meets *window*, numbered per contact in time order.

    The numbering runs over every purchase of the contacts concerned, so the
    first ever stays the first whatever the window.
    """
    revenue = Purchase
    concerned = select(revenue.contact_id).where(window(revenue.purchased_at))
    numbered = (
        select(
            revenue.contact_id,
            revenue.purchased_at.label("occurred_at"),
            revenue.total.label("amount"),
            revenue.currency,
            func.row_number().over(partition_by=revenue.contact_id, order_by=revenue.purchased_at).label("nth"),
        )
        .where(revenue.contact_id.in_(concerned))
        .subquery("numbered")
    )
    return numbered


def attribution_facts(dialect: str, zone: str, window: Any) -> list[Any]:
    """INSERT sources for ``report_attribution_daily``: per model and grouping."""
    numbered = revenue_events(window)
    events = (
        select(
            numbered.c.occurred_at,
            numbered.c.amount,
            numbered.c.currency,
            case((numbered.c.nth == 1, 1), else_=0).label("is_first"),
            attributed_touch(numbered.c.contact_id, numbered.c.occurred_at, last=False).label("first_id"),
            attributed_touch(numbered.c.contact_id, numbered.c.occurred_at, last=True).label("last_id"),
        ).where(window(numbered.c.occurred_at))
    ).cte("events")
    day = _day(events.c.occurred_at, dialect, zone)
    statements = []
    for model in ("first", "last"):
        touch = Touchpoint.__table__.alias(f"{model}_touch")
        for dimension in ROI_GROUPINGS:
            value = touch_key(dimension, touch.c)
            statements.append(
                select(
                    day.label("day"),
                    literal(model).label("model"),
                    literal(dimension).label("dimension"),
                    value.label("value"),
                    events.c.currency,
                    func.sum(events.c.is_first).label("acquisitions"),
                    func.sum(events.c.amount).label("revenue"),
                )
                .select_from(events)
                .outerjoin(touch, touch.c.id == events.c[f"{model}_id"])
                .group_by(day, value, events.c.currency)
            )
    return statements


def click_facts(dialect: str, zone: str, where: Any) -> list[Any]:
    """INSERT sources for ``report_click_daily``: each conversion credited to its contact's last click, per kind.

    The same rule as the reports' raw route: the contact's latest click of the
    kind at or before the conversion (time, then id), none if it has none; a
    click without the grouping's value counts under NULL.
    """
    conversion = Touchpoint.__table__.alias("conversion")
    statements = []
    for kind, dimensions in CLICK_GROUPINGS.items():
        credited = (
            select(
                conversion.c.occurred_at,
                conversion.c.quantity,
                attributed_touch(conversion.c.contact_id, conversion.c.occurred_at, last=True, kinds=(kind,)).label(
                    "click_id"
                ),
            )
            .where(
                conversion.c.kind == TouchKind.CONVERSION.value,
                conversion.c.contact_id.is_not(None),
                where(conversion.c.occurred_at),
            )
            .cte(f"credited_{kind}")
        )
        day = _day(credited.c.occurred_at, dialect, zone)
        click = Touchpoint.__table__.alias(f"{kind}_credited")
        for dimension in dimensions:
            value = touch_key(dimension, click.c)
            statements.append(
                select(
                    day.label("day"),
                    literal(kind).label("kind"),
                    literal(dimension).label("dimension"),
                    value.label("value"),
                    func.sum(credited.c.quantity).label("conversions"),
                )
                .select_from(credited)
                .join(click, click.c.id == credited.c.click_id)
                .group_by(day, value)
            )
    return statements


TOUCH_COLUMNS = ["day", "dimension", "value", "kind", "currency", "quantity", "amount"]
SALE_COLUMNS = ["day", "dimension", "product_id", "currency", "units", "orders", "revenue", "min_price", "max_price"]
ATTRIBUTION_COLUMNS = ["day", "model", "dimension", "value", "currency", "acquisitions", "revenue"]
CLICK_COLUMNS = ["day", "kind", "dimension", "value", "conversions"]
#: Every rollup table (what :func:`rebuild` and :func:`refresh` recompute).
TABLES = (TouchDaily, SaleDaily, AttributionDaily, ClickDaily)


def _roll(
    connection: Connection, zone: ZoneInfo, first: date | None, last: date | None, tables: Sequence[Any] = TABLES
) -> None:
    """Recompute the rows of *tables* for the days from *first* to *last* (both included; None: unbounded)."""
    dialect = {"mysql": "mariadb"}.get(connection.dialect.name, connection.dialect.name)
    name = zone.key
    lower = day_start(first, zone) if first else None
    upper = day_start(last + timedelta(days=1), zone) if last else None

    def window(at: Any) -> Any:
        condition: Any = true()
        if lower is not None:
            condition = condition & (at >= lower)
        if upper is not None:
            condition = condition & (at < upper)
        return condition

    for table in tables:
        days: Any = true()
        if first is not None:
            days = days & (table.day >= first)
        if last is not None:
            days = days & (table.day <= last)
        connection.execute(delete(table).where(days))
    parts = (
        (TouchDaily, TOUCH_COLUMNS, touch_facts(dialect, name, window(Touchpoint.occurred_at))),
        (SaleDaily, SALE_COLUMNS, sale_facts(dialect, name, window(Purchase.purchased_at))),
        (AttributionDaily, ATTRIBUTION_COLUMNS, attribution_facts(dialect, name, window)),
        (ClickDaily, CLICK_COLUMNS, click_facts(dialect, name, window)),
    )
    for table, columns, statements in parts:
        if table in tables:
            connection.execute(insert(table).from_select(columns, union_all(*statements)))


def rebuild(connection: Connection, zone_name: str, now: datetime, tables: Sequence[Any] = TABLES) -> int:
    """Recompute the whole rollup from the raw rows, cut in *zone_name*; the rows written.

    *tables* is for migrations: those that exist at their revision (a later
    migration adds and backfills its own, :func:`backfill`).
    """
    zone = ZoneInfo(zone_name)
    until = settled_before(now, zone)
    connection.execute(delete(DirtyDay))
    connection.execute(delete(RollupState))
    _roll(connection, zone, None, until - timedelta(days=1), tables)
    connection.execute(insert(RollupState).values(id=1, zone=zone_name, rolled_until=until, refreshed_at=now))
    return sum(int(connection.scalar(select(func.count()).select_from(t)) or 0) for t in tables)


def backfill(connection: Connection, table: Any) -> None:
    """Fill a rollup table added to a built rollup: its rows for every day the others hold.

    For a migration adding *table*: the days already rolled up get their rows
    (the dirty ones too; the next refresh recomputes those for every table).
    Nothing before the rollup was first built.
    """
    state = connection.execute(select(RollupState.zone, RollupState.rolled_until).limit(1)).first()
    if state is not None:
        _roll(connection, ZoneInfo(state.zone), None, state.rolled_until - timedelta(days=1), (table,))


def refresh(crm: CRM) -> int:
    """Roll up the newly settled days and recompute the dirty ones, in one transaction; the days rolled.

    Does nothing before the rollup was first built, or when it is cut in
    another zone than the CRM's (rebuild it then). A clock behind the rollup
    (a restored backup, a test's frozen clock) may have written unmarked rows
    into days it holds: then everything is rebuilt.
    """
    with crm.transaction(independent=True) as ctx:
        session = ctx.session
        state = session.scalars(
            select(RollupState).order_by(RollupState.id).limit(1).with_for_update()
        ).first()  # one refresh at a time (SQLite: the write lock already)
        zone = crm.settings.zone
        if state is None or state.zone != crm.settings.timezone:
            return 0
        until = settled_before(ctx.now, zone)
        if state.rolled_until > until:
            rebuild(session.connection(), state.zone, ctx.now)
            return (state.rolled_until - until).days
        markers = session.execute(select(DirtyDay.id, DirtyDay.day)).all()
        days = sorted({m.day for m in markers if m.day < state.rolled_until})
        connection = session.connection()
        for first, last in _runs(days):
            _roll(connection, zone, first, last)
        rolled = len(days)
        if until > state.rolled_until:
            _roll(connection, zone, state.rolled_until, until - timedelta(days=1))
            rolled += (until - state.rolled_until).days
            session.execute(update(RollupState).where(RollupState.id == state.id).values(rolled_until=until))
        if markers:
            session.execute(delete(DirtyDay).where(DirtyDay.id.in_([m.id for m in markers])))
        session.execute(update(RollupState).where(RollupState.id == state.id).values(refreshed_at=ctx.now))
        return rolled


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    """Consecutive *days* (sorted) as (first, last) runs."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


__all__ = ["Coverage", "backfill", "coverage", "rebuild", "refresh"]
