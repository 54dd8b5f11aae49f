"""Daily rollups for marketing.channels, marketing.products and marketing.roi, backfilled.

Per local day (in the zone of the CRM being upgraded) and grouping value: the
touchpoints' quantities and values, the purchase lines' units, orders,
revenue and prices, and revenue credited first- and last-touch. No personal
data. A marker table lists rolled-up days changed by late writes. See
``crmcore.reports.rollup``.

Revision ID: core_0010
Revises: core_0009
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

import crmcore.db

revision = "core_0010"
down_revision = "core_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_touch_daily",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amount", crmcore.db.Money, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_touch_daily")),
    )
    op.create_index(
        "ix_report_touch_daily_key",
        "report_touch_daily",
        ["dimension", "day", "value", "kind", "currency", "quantity", "amount"],
    )
    op.create_table(
        "report_sale_daily",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("revenue", crmcore.db.Money, nullable=False),
        sa.Column("min_price", crmcore.db.Money, nullable=False),
        sa.Column("max_price", crmcore.db.Money, nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_report_sale_daily_product_id_product"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_sale_daily")),
    )
    op.create_index("ix_report_sale_daily_key", "report_sale_daily", ["dimension", "day", "product_id", "currency"])
    op.create_table(
        "report_attribution_daily",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=5), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("acquisitions", sa.BigInteger(), nullable=False),
        sa.Column("revenue", crmcore.db.Money, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_attribution_daily")),
    )
    op.create_index(
        "ix_report_attribution_daily_key",
        "report_attribution_daily",
        ["dimension", "day", "model", "value", "currency"],
    )
    op.create_table(
        "report_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("rolled_until", sa.Date(), nullable=False),
        sa.Column("refreshed_at", crmcore.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_rollup_state")),
    )
    op.create_table(
        "report_dirty_day",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_dirty_day")),
    )
    op.create_index("ix_report_dirty_day_day", "report_dirty_day", ["day"])
    # backfill in the zone of the CRM being upgraded (reports cut days in that zone)
    from crmcore.models.rollup import AttributionDaily, SaleDaily, TouchDaily
    from crmcore.reports.rollup import rebuild

    crm = context.config.attributes.get("crm")
    zone = crm.settings.timezone if crm is not None else "UTC"
    now = crm.clock.now() if crm is not None else datetime.now(UTC)
    rebuild(op.get_bind(), zone, now, (TouchDaily, SaleDaily, AttributionDaily))  # the tables of this revision


def downgrade() -> None:
    op.drop_index("ix_report_dirty_day_day", table_name="report_dirty_day")
    op.drop_table("report_dirty_day")
    op.drop_table("report_rollup_state")
    op.drop_index("ix_report_attribution_daily_key", table_name="report_attribution_daily")
    op.drop_table("report_attribution_daily")
    op.drop_index("ix_report_sale_daily_key", table_name="report_sale_daily")
    op.drop_table("report_sale_daily")
    op.drop_index("ix_report_touch_daily_key", table_name="report_touch_daily")
    op.drop_table("report_touch_daily")
