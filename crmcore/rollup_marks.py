"""Marking the rolled-up days a late write changes (the write side of :mod:`crmcore.reports.rollup`).

Kept apart from the reports so the services that write touchpoints and sales
import only this: a date comparison per write, and an insert only for writes
dated before today.

Writers mark every day before *today*, while the rollup takes only days
before *yesterday*: a write that began before midnight and commits after
it is still marked (unless its transaction lasted more than a day).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import insert, select

from crmcore.models import Purchase, TouchKind, Touchpoint
from crmcore.models.rollup import DirtyDay

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from crmcore.context import HookContext
#: How far back a write must go to touch a rolled-up day: days before ``today - SETTLE`` are settled.
SETTLE = timedelta(days=1)
#: Clicks whose conversions the last-click rollup credits (``report_click_daily``).
LAST_CLICK_KINDS = frozenset({TouchKind.AD_CLICK.value, TouchKind.AFFILIATE_CLICK.value})


def local_day(at: datetime, zone: ZoneInfo) -> date:
    """The day in *zone* holding the UTC instant *at*."""
    return at.astimezone(zone).date()


def settled_before(now: datetime, zone: ZoneInfo) -> date:
    """The first day that is not settled at *now*: days before it may be rolled up."""
    return local_day(now, zone) - SETTLE


def marked_before(now: datetime, zone: ZoneInfo) -> date:
    """The first day a write at *now* does not mark: today (a day ahead of :func:`settled_before`)."""
    return local_day(now, zone)


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight starting *day*, as a UTC instant."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


# -- writers: mark the past days a write changes ------------------------------------------


def touch_written(ctx: HookContext, touch: Touchpoint) -> None:
    """After a touchpoint was recorded (or given to a contact): mark its day, and the sales and
    conversions it may now be credited for, if past."""
    zone = ctx.crm.settings.zone
    day = local_day(touch.occurred_at, zone)
    today = marked_before(ctx.now, zone)
    if day >= today:
        return  # the common case: a write of today changes nothing rolled up
    from crmcore.attribution import CREDITABLE_KINDS

    days = {day}
    if touch.contact_id is not None and touch.kind in CREDITABLE_KINDS:
        later = ctx.session.scalars(
            select(Purchase.purchased_at).where(
                Purchase.contact_id == touch.contact_id, Purchase.purchased_at >= touch.occurred_at
            )
        )
        days.update(local_day(at, zone) for at in later)
    if touch.contact_id is not None and touch.kind in LAST_CLICK_KINDS:
        converted = ctx.session.scalars(
            select(Touchpoint.occurred_at).where(
                Touchpoint.contact_id == touch.contact_id,
                Touchpoint.kind == TouchKind.CONVERSION.value,
                Touchpoint.occurred_at >= touch.occurred_at,
            )
        )
        days.update(local_day(at, zone) for at in converted)
    mark(ctx, (d for d in days if d < today))


def purchase_written(ctx: HookContext, purchase: Purchase) -> None:
    """After a purchase was recorded: mark its day if past, and the contact's later sales (first purchase moved)."""
    zone = ctx.crm.settings.zone
    today = marked_before(ctx.now, zone)
    day = local_day(purchase.purchased_at, zone)
    if day >= today:
        return
    later = ctx.session.scalars(
        select(Purchase.purchased_at).where(
            Purchase.contact_id == purchase.contact_id, Purchase.purchased_at >= purchase.purchased_at
        )
    )
    mark(ctx, (d for d in {day, *(local_day(at, zone) for at in later)} if d < today))


def contacts_merged(ctx: HookContext, contact_ids: Sequence[int]) -> None:
    """Before a merge moves touchpoints and sales: mark the past days of the contacts' sales and conversions
    (their attribution)."""
    zone = ctx.crm.settings.zone
    today = marked_before(ctx.now, zone)
    sales = ctx.session.scalars(select(Purchase.purchased_at).where(Purchase.contact_id.in_(contact_ids)))
    converted = ctx.session.scalars(
        select(Touchpoint.occurred_at).where(
            Touchpoint.contact_id.in_(contact_ids), Touchpoint.kind == TouchKind.CONVERSION.value
        )
    )
    days = {local_day(at, zone) for at in [*sales, *converted]}
    mark(ctx, (d for d in days if d < today))


def mark(ctx: HookContext, days: Iterable[date]) -> None:
    """Mark *days* dirty in this unit of work (each day once per transaction)."""
    seen: set[date] = ctx.cache.setdefault("rollup_dirty", set())
    fresh = sorted(set(days) - seen)
    if fresh:
        ctx.session.execute(insert(DirtyDay), [{"day": day} for day in fresh])
        seen.update(fresh)
