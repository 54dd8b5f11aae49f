"""Indexes the reports need.

Revision ID: core_0003
Revises: core_0001
Create Date: 2026-11-29 00:14:18

- ``touchpoint (contact_id, kind, occurred_at)``: "the contact's last ad (or
  affiliate) click before this conversion" is one index seek that never reads
  the table (marketing.ads, marketing.affiliates, marketing.touches).
- ``lifecycle_change (to_stage, contact_id, occurred_at)``: "did this contact
  ever become a customer" and "when first" are read from the index alone
  (sales.conversion, sales.cycle, marketing.touches).
"""

from __future__ import annotations

from alembic import op

revision = "core_0003"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_lifecycle_change_stage_contact", "lifecycle_change", ["to_stage", "contact_id", "occurred_at"])
    op.create_index("ix_touchpoint_contact_kind_time", "touchpoint", ["contact_id", "kind", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_touchpoint_contact_kind_time", table_name="touchpoint")
    op.drop_index("ix_lifecycle_change_stage_contact", table_name="lifecycle_change")
