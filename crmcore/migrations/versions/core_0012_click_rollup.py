"""A daily rollup of last-click conversions for marketing.ads and marketing.affiliates, backfilled.

Per local day of the conversion, click kind (``ad_click``, ``affiliate_click``)
and grouping value (the ad, campaign or source of the last ad click; the
affiliate of the last affiliate click): the conversions credited. No personal
data. Filled for the days the other rollups already hold, in their zone (none
before the rollup was first built). See ``crmcore.reports.rollup``.

Revision ID: core_0012
Revises: core_0011
Create Date: 2026-11-29 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crmcore.db

revision = "core_0012"
down_revision = "core_0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_click_daily",
        sa.Column("id", crmcore.db.BigID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("conversions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_click_daily")),
    )
    op.create_index(
        "ix_report_click_daily_key", "report_click_daily", ["kind", "dimension", "day", "value", "conversions"]
    )
    from crmcore.models.rollup import ClickDaily
    from crmcore.reports.rollup import backfill

    backfill(op.get_bind(), ClickDaily)


def downgrade() -> None:
    op.drop_index("ix_report_click_daily_key", table_name="report_click_daily")
    op.drop_table("report_click_daily")
