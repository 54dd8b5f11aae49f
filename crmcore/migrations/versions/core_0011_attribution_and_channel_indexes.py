"""Indexes for the reports at 10M touchpoints: the last click before a conversion, channels' contacts.

- ``ix_touchpoint_contact_kind_time`` gains ``id, ad, affiliate``: "the contact's
  last ad (affiliate) click before the conversion" is then read from the index
  alone, in its order (time, then id), with the click's ad or affiliate;
  PostgreSQL had to fetch and sort each contact's clicks for the id, then fetch
  the click's row for its ad.
- ``expr_touchpoint_source_contact`` on ``(COALESCE(source, utm_source),
  contact_id, occurred_at)`` (SQLite and PostgreSQL): distinct contacts do not
  add up across days, so ``marketing.channels`` counts them from the
  touchpoints of the range; grouped by source (its default), this index hands
  the rows over grouped and in contact order, and the distinct count streams
  with no sort and no temporary table. PostgreSQL reads it alone only when it
  also holds the expression's columns (``INCLUDE``). MariaDB has no expression
  indexes and is left without it. The name starts with ``expr_``
  (``crmcore.models.EXPRESSION_PREFIX``), which keeps it out of the comparison
  with the models.

Revision ID: core_0011
Revises: core_0010
Create Date: 2026-11-29 12:10:00
"""

from __future__ import annotations

from alembic import op

revision = "core_0011"
down_revision = "core_0010"
branch_labels = None
depends_on = None

CLICKS = "ix_touchpoint_contact_kind_time"
CHANNELS = "expr_touchpoint_source_contact"


def upgrade() -> None:
    op.drop_index(CLICKS, table_name="touchpoint")
    op.create_index(CLICKS, "touchpoint", ["contact_id", "kind", "occurred_at", "id", "ad", "affiliate"])
    dialect = op.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        include = " INCLUDE (source, utm_source)" if dialect == "postgresql" else ""
        op.execute(f"CREATE INDEX {CHANNELS} ON touchpoint ((COALESCE(source, utm_source)), contact_id, occurred_at)"
                   f"{include}")  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name in ("sqlite", "postgresql"):
        op.execute(f"DROP INDEX {CHANNELS}")
    op.drop_index(CLICKS, table_name="touchpoint")
    op.create_index(CLICKS, "touchpoint", ["contact_id", "kind", "occurred_at"])
