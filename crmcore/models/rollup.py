"""Daily rollups the marketing reports read instead of millions of raw rows (no personal data).

Each table holds sums per local day (in the zone of ``report_rollup_state``)
and one grouping value; :mod:`crmcore.reports.rollup` keeps them and says
which days they cover.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigID, Money, UTCDateTime


class TouchDaily(Base):
    """Touchpoints per local day, grouping (``dimension``) value, kind and currency (``marketing.channels``)."""

    __tablename__ = "report_touch_daily"
    __table_args__ = (
        Index("ix_report_touch_daily_key", "dimension", "day", "value", "kind", "currency", "quantity", "amount"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    #: A touchpoint grouping (``source``, ``medium``, ``ad``, ``utm_term``, …) or ``all``.
    dimension: Mapped[str] = mapped_column(String(16))
    value: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str | None] = mapped_column(String(3))
    #: The sum of the touchpoints' quantities.
    quantity: Mapped[int] = mapped_column(BigInteger)
    #: The sum of their values (in ``currency``).
    amount: Mapped[Decimal] = mapped_column(Money)


class SaleDaily(Base):
    """Purchase lines per local day, product (or ``all``) and currency (``marketing.products``)."""

    __tablename__ = "report_sale_daily"
    __table_args__ = (Index("ix_report_sale_daily_key", "dimension", "day", "product_id", "currency"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    #: ``product`` (one row per product) or ``all`` (every line of the day).
    dimension: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    units: Mapped[int] = mapped_column(BigInteger)
    #: Distinct purchases (a purchase falls on one day, so days add up).
    orders: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Money)
    min_price: Mapped[Decimal] = mapped_column(Money)
    max_price: Mapped[Decimal] = mapped_column(Money)


class AttributionDaily(Base):
    """Revenue events per local day, credited first-touch and last-touch per grouping value (``marketing.roi``)."""

    __tablename__ = "report_attribution_daily"
    __table_args__ = (Index("ix_report_attribution_daily_key", "dimension", "day", "model", "value", "currency"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    #: ``first`` or ``last`` touch.
    model: Mapped[str] = mapped_column(String(5))
    #: ``campaign``, ``source`` or ``affiliate``.
    dimension: Mapped[str] = mapped_column(String(16))
    value: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    #: Sales that were their contact's first ever.
    acquisitions: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Money)


class RollupState(Base):
    """What the rollups cover (one row): the zone days are cut in, and the first day not rolled up."""

    __tablename__ = "report_rollup_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    #: Days before this one are rolled up (except the dirty ones).
    rolled_until: Mapped[date] = mapped_column(Date)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DirtyDay(Base):
    """A rolled-up day whose raw rows changed after it was rolled up (a late write); recomputed on refresh.

    Not unique: a writer inserts one without looking, and a refresh deletes
    only the markers it read, so a write that lands during a refresh is never lost.
    """

    __tablename__ = "report_dirty_day"
    __table_args__ = (Index("ix_report_dirty_day_day", "day"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    day: Mapped[date] = mapped_column(Date)


class ClickDaily(Base):
    """Conversions per local day credited to their contact's last click of a kind (``marketing.ads``, ``affiliates``).

    Each conversion touchpoint is credited once per click kind (``ad_click``,
    ``affiliate_click``) to the contact's last click of that kind at or before
    it, keyed by that click's ``dimension`` value (``ad``, ``campaign`` or
    ``source`` for ad clicks, ``affiliate`` for affiliate clicks); a
    conversion with no such click is not in the table.
    """

    __tablename__ = "report_click_daily"
    __table_args__ = (Index("ix_report_click_daily_key", "kind", "dimension", "day", "value", "conversions"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: The local day of the conversion.
    day: Mapped[date] = mapped_column(Date)
    #: The kind of click credited: ``ad_click`` or ``affiliate_click``.
    kind: Mapped[str] = mapped_column(String(20))
    dimension: Mapped[str] = mapped_column(String(16))
    #: The credited click's value for ``dimension`` (NULL: the click had none).
    value: Mapped[str | None] = mapped_column(String(255))
    #: The sum of the conversions' quantities.
    conversions: Mapped[int] = mapped_column(BigInteger)
